#!/usr/bin/env bash
# Every policy (CDQN, the baselines and the other RL agents) trained in each dataset's learned
# simulator and tested in its held-apart one, over seeds: one Markdown/CSV table and a plot.
# Prepares the datasets and trains the two user models of each in --models_root (as
# run_policy.sh) if missing; the table goes to --out (default {models_root}/comparison).
#   experiment_policy/run_comparison.sh --datasets=yelp,ml100k --seeds=0,1,2,3,4
set -euo pipefail
source "$(dirname "$0")/../experiment_user_model/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
datasets=$(flag_value datasets yelp,ml100k "$@")
data_folder=$(flag_value data_folder dropbox "$@")
models_root=$(flag_value models_root runs "$@")
out=$(flag_value out "${models_root}/comparison" "$@")
um_itrs=$(flag_value user_model_itrs 2000 "$@")
um_features=$(flag_value simulator_features generalising "$@")
# This script's own flags; the rest go to main_comparison.py.
without_flags "datasets data_folder models_root out user_model_itrs simulator_features" "$@"
args=(
  --datasets="$datasets"
  --seeds=0,1,2,3,4
  --models_root="$models_root"
  --out="$out"
  --policy=all
  --k=5
  --n_candidates=100
  --horizon=10
  --num_itrs=2000
  ${kept_args[@]+"${kept_args[@]}"}
)
# A mistyped flag stops the script before it prepares data or trains user models.
"$PYTHON" experiment_policy/main_comparison.py "${args[@]}" --check_flags
for dataset in ${datasets//,/ }; do
  ensure_dataset "$data_folder" "$dataset" ${data_args[@]+"${data_args[@]}"}
  ensure_user_model "$data_folder" "$dataset" "$models_root/${dataset}__LSTM__entropy__0" \
    LSTM 0 "$um_itrs" "$um_features"
  ensure_user_model "$data_folder" "$dataset" "$models_root/${dataset}__PW__entropy__1" \
    PW 1 "$um_itrs" "$um_features"
done

exec "$PYTHON" experiment_policy/main_comparison.py "${args[@]}"
