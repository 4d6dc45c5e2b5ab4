#!/usr/bin/env bash
# Prepares datasets in the data folder; `./process_data.sh --help` lists every flag and
# docs/data.md defines every reader. Relative paths are taken from the current directory.
#   ./process_data.sh --dataset=yelp          # dropbox/yelp.txt (released format)
#   ./process_data.sh --dataset=ml100k        # MovieLens 100k, downloaded when absent
#   ./process_data.sh --dataset=synthetic --users=2000   # a log with its ground truth
#   ./process_data.sh --dataset=synthetic --world=mean_uniform_noclick   # another world
#   ./process_data.sh                         # ml100k and every released-format .txt
# PYTHON picks the interpreter (default: the repository's .venv unless a virtualenv is active,
# see experiment_user_model/common.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$root/experiment_user_model/common.sh"
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
export TF_CPP_MIN_LOG_LEVEL=3
exec "$PYTHON" -m ganrl.cli.process_data "$@"
