#!/usr/bin/env bash
# Entropy-regularised (maximum-likelihood) pre-training of the GAN user model, with the original
# script's settings: LSTM on yelp, learning rate 0.0005, 50 users a batch, 2000 iterations,
# dims 64-64, 20 LSTM units, pw_dim 4; and ganrl's generalising item features (training-split
# item statistics, identity dropout, the user's history of each item: docs/
# user_model_generalisation.md). --item_features=onehot is the paper's model. Any flag can be
# overridden: ./run_gan_user_model.sh --dataset=tb
set -euo pipefail
cd "$(dirname "$0")/.."
source experiment_user_model/common.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

ensure_dataset "$(flag_value data_folder dropbox "$@")" "$(flag_value dataset yelp "$@")"

exec "$PYTHON" experiment_user_model/main_gan_user_model.py \
  --data_folder=dropbox \
  --dataset=yelp \
  --user_model=LSTM \
  --regularizer=entropy \
  --learning_rate=0.0005 \
  --batch_size=50 \
  --num_itrs=2000 \
  --dims=64-64 \
  --rnn_hidden_dim=20 \
  --pw_dim=4 \
  --pw_band_size=20 \
  --item_features=generalising \
  --seed=0 \
  "$@"
