#!/usr/bin/env bash
# Entropy-regularised (maximum-likelihood) pre-training of the GAN user model, with the original
# script's settings: LSTM on yelp, learning rate 0.0005, 50 users a batch, dims 64-64, 20 LSTM
# units, pw_dim 4; ganrl's generalising item features (out-of-fold item statistics of the
# training users, identity dropout, item biases, the user's history of each item, choice
# evidence: docs/user_model_generalisation.md); and a length in passes over the training users
# (up to 100, stopped 10 evaluations after the best validation loss) instead of the original's
# fixed 2000 iterations, so a larger log is not under-trained (--num_itrs=2000 restores it).
# --item_features=onehot is the paper's model. Any flag can be overridden:
# ./run_gan_user_model.sh --dataset=tb
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

# process_data.sh's own flags (--columns, --csv_path, ...) prepare a missing dataset.
split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
defaults=(
  --data_folder=dropbox
  --dataset=yelp
  --user_model=LSTM
  --regularizer=entropy
  --learning_rate=0.0005
  --batch_size=50
  --num_epochs=100
  --early_stop=10
  --dims=64-64
  --rnn_hidden_dim=20
  --pw_dim=4
  --pw_band_size=20
  --item_features=generalising
  --seed=0
)
data_folder=$(flag_value data_folder dropbox "$@")
dataset=$(flag_value dataset yelp "$@")
if [ ! -f "$data_folder/$dataset.pkl" ]; then
  # A mistyped flag stops the script before the data step, not after it.
  "$PYTHON" experiment_user_model/main_gan_user_model.py "${defaults[@]}" "$@" --check_flags
fi
ensure_dataset "$data_folder" "$dataset" ${data_args[@]+"${data_args[@]}"}

exec "$PYTHON" experiment_user_model/main_gan_user_model.py "${defaults[@]}" "$@"
