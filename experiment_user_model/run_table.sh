#!/usr/bin/env bash
# The paper's user-model table in one command: every baseline and GAN-PW / GAN-LSTM (entropy
# pre-training, then adversarial fine-tuning from it) on yelp, tb, rsc and ml100k over 5 seeds;
# Markdown and CSV tables of test prec@1 / prec@2, mean (std), in --out. Prepares missing
# datasets; finished records and GAN runs are reused, never retrained. The GAN runs have the
# run scripts' settings (run_gan_user_model.sh, run_gan_L2_regularized.sh), and any flag of
# main_gan_user_model.py overrides them; --resplit, --train_share and --max_events cut every
# method's logs alike. Subsets: --datasets, --seeds, --methods.
#   experiment_user_model/run_table.sh --datasets=yelp --seeds=0 --methods=wd_lr,gan_lstm_l2
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
datasets=$(flag_value datasets yelp,tb,rsc,ml100k "$@")
data_folder=$(flag_value data_folder dropbox "$@")
# main_gan_user_model.py's defaults are the run scripts' values but --item_features, set
# here as run_gan_user_model.sh sets it (entropy runs: up to 100 passes over the training
# users, stopped 10 evaluations after the best validation loss). The entropy runs take
# --num_itrs / --learning_rate, the adversarial ones --adv_*. (This script once fixed the
# entropy runs at --num_itrs=2000; that flag reproduces the tables made then.)
args=(
  --datasets="$datasets"
  --data_folder="$data_folder"
  --seeds=0,1,2,3,4
  --item_features=generalising
  --learning_rate=0.0005
  --adv_learning_rate=0.0001
  --adv_itrs=5000
  "$@"
)
# A mistyped flag or method stops the script before it prepares any dataset.
"$PYTHON" experiment_user_model/main_table.py "${args[@]}" --check_flags
if [ "$(flag_value write_only false "$@")" = false ]; then
  for dataset in ${datasets//,/ }; do
    ensure_dataset "$data_folder" "$dataset" ${data_args[@]+"${data_args[@]}"}
  done
fi
exec "$PYTHON" experiment_user_model/main_table.py "${args[@]}"
