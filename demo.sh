#!/usr/bin/env bash
# The README's main job on its default dataset, MovieLens 100k (fetched by process_data.sh):
# prepare the data; train the user model of the training simulator (LSTM) and, apart, the one
# of the test simulator (PW, another seed); train the cascading DQN and the baselines in the
# first and compare them in the second. The user models use the run script's generalising item
# features; every registered policy (CDQN, PPO, A2C, DDPG, LinUCB and the baselines) runs.
# Run through `make demo`, which sets up the virtual environment first. DATASET=yelp ./demo.sh
# uses dropbox/yelp.txt instead.
set -euo pipefail
cd "$(dirname "$0")"
export PYTHON=${PYTHON:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=3
dataset=${DATASET:-ml100k}
itrs=${USER_MODEL_ITRS:-500}

./process_data.sh --dataset="$dataset" --data_folder=dropbox
for spec in "LSTM 0" "PW 1"; do
  read -r encoder seed <<<"$spec"
  experiment_user_model/run_gan_user_model.sh --dataset="$dataset" --user_model="$encoder" \
    --seed="$seed" --num_itrs="$itrs" --save_dir="runs/demo/${dataset}__${encoder}__${seed}"
done
experiment_policy/run_policy.sh --dataset="$dataset" \
  --user_model_dir="runs/demo/${dataset}__LSTM__0" \
  --test_user_model_dir="runs/demo/${dataset}__PW__1" \
  --save_dir="runs/demo/${dataset}__policy" --n_candidates=100 --num_itrs=1000 \
  --eval_users=500 --adapt_itrs=100 --regret_itrs=100
