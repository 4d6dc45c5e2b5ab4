#!/usr/bin/env bash
# Prepares datasets in the data folder; `./process_data.sh --help` lists every flag.
#   ./process_data.sh --dataset=yelp          # dropbox/yelp.txt (released format)
#   ./process_data.sh --dataset=ml100k        # MovieLens 100k, fetched when absent
#   ./process_data.sh                         # ml100k and every released-format .txt
set -euo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
exec "${PYTHON:-python3}" -m ganrl.data.process "$@"
