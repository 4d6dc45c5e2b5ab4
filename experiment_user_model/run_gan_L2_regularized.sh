#!/usr/bin/env bash
# Adversarial (L2-regularised min-max) fine-tuning, 5000 iterations, starting from the saved
# entropy-pretrained model in --pretrain_dir (default: the run_gan_user_model.sh run folder of
# the same dataset, encoder and seed, which is trained first if it is missing).
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

dataset=$(flag_value dataset yelp "$@")
user_model=$(flag_value user_model LSTM "$@")
seed=$(flag_value seed 0 "$@")
pretrain_dir=$(flag_value pretrain_dir "runs/${dataset}__${user_model}__entropy__${seed}" "$@")
split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
ensure_dataset "$(flag_value data_folder dropbox "$@")" "$dataset" \
  ${data_args[@]+"${data_args[@]}"}
if [ ! -f "$pretrain_dir/results.json" ]; then
  echo "pre-training $pretrain_dir first" >&2
  # Only the flags the two runs share are passed on.
  without_flags "learning_rate num_itrs save_dir pretrain_dir regularizer pretrain_checkpoint" \
    "$@"
  experiment_user_model/run_gan_user_model.sh ${kept_args[@]+"${kept_args[@]}"} \
    --save_dir="$pretrain_dir"
fi

exec "$PYTHON" experiment_user_model/main_gan_user_model.py \
  --data_folder=dropbox \
  --dataset=yelp \
  --user_model=LSTM \
  --regularizer=L2 \
  --item_features=generalising \
  --pretrain_dir="$pretrain_dir" \
  --learning_rate=0.0001 \
  --batch_size=50 \
  --num_itrs=5000 \
  --dims=64-64 \
  --rnn_hidden_dim=20 \
  --pw_dim=4 \
  --pw_band_size=20 \
  --seed=0 \
  "$@"
