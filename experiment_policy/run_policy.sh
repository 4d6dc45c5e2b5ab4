#!/usr/bin/env bash
# The paper's policy experiment: train the cascading DQN and the baselines in the simulator
# learned from the training users, test them in a separately trained simulator. Trains the two
# user models first when they are missing (the training simulator: LSTM, seed 0; the test
# simulator: PW, seed 1, i.e. another encoder and initialisation).
#   experiment_policy/run_policy.sh --dataset=ml100k --policy=cdqn,gan_greedy,random
set -euo pipefail
cd "$(dirname "$0")/.."
source experiment_user_model/common.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

dataset=$(flag_value dataset yelp "$@")
data_folder=$(flag_value data_folder dropbox "$@")
um_itrs=$(flag_value user_model_itrs 2000 "$@")
um_features=$(flag_value simulator_features generalising "$@")
models_root=$(flag_value models_root runs "$@")
train_dir=$(flag_value user_model_dir "${models_root}/${dataset}__LSTM__entropy__0" "$@")
test_dir=$(flag_value test_user_model_dir "${models_root}/${dataset}__PW__entropy__1" "$@")
ensure_dataset "$data_folder" "$dataset"
ensure_user_model "$data_folder" "$dataset" "$train_dir" LSTM 0 "$um_itrs" "$um_features"
ensure_user_model "$data_folder" "$dataset" "$test_dir" PW 1 "$um_itrs" "$um_features"

# --dataset, --data_folder, --user_model_itrs and --models_root are this script's own flags.
args=()
for arg in "$@"; do
  case $arg in
    --dataset=*|--data_folder=*|--user_model_itrs=*|--simulator_features=*|--models_root=*) ;;
    *) args+=("$arg") ;;
  esac
done
exec "$PYTHON" experiment_policy/main_policy.py \
  --user_model_dir="$train_dir" \
  --test_user_model_dir="$test_dir" \
  --save_dir="runs/policy/${dataset}__0" \
  --policy=all \
  --k=5 \
  --n_candidates=0 \
  --horizon=10 \
  --gamma=0.9 \
  --learning_rate=0.001 \
  --num_itrs=2000 \
  --batch_size=64 \
  --epsilon_start=1.0 \
  --epsilon_end=0.05 \
  --epsilon_steps=1000 \
  --seed=0 \
  ${args[@]+"${args[@]}"}
