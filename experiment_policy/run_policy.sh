#!/usr/bin/env bash
# The paper's policy experiment: train the cascading DQN and the baselines in the simulator
# learned from the training users, test them in a separately trained simulator. The user models
# are looked for in --models_root (default runs): the training simulator's in
# {dataset}__LSTM__entropy__0, the test simulator's in {dataset}__PW__entropy__1 (another
# encoder and initialisation), or in --user_model_dir / --test_user_model_dir; a missing one is
# trained first (--user_model_itrs iterations, --simulator_features item features), and the
# script says which it reuses and which it trains. --ensemble=N adds N LSTM user models
# ({dataset}__LSTM__entropy__2 ...) to the training simulator, --reward_ensemble=N the same
# models to the learned reward only (below). The run folder defaults to
# {models_root}/policy/{dataset}__{seed}. `make demo`'s models are in runs/demo:
#   experiment_policy/run_policy.sh --dataset=ml100k --models_root=runs/demo --policy=cdqn,random
set -euo pipefail
source "$(dirname "$0")/../experiment_user_model/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}

split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
dataset=$(flag_value dataset yelp "$@")
data_folder=$(flag_value data_folder dropbox "$@")
um_itrs=$(flag_value user_model_itrs 2000 "$@")
um_features=$(flag_value simulator_features generalising "$@")
models_root=$(flag_value models_root runs "$@")
seed=$(flag_value seed 0 "$@")
train_dir=$(flag_value user_model_dir "${models_root}/${dataset}__LSTM__entropy__0" "$@")
test_dir=$(flag_value test_user_model_dir "${models_root}/${dataset}__PW__entropy__1" "$@")
save_dir=$(flag_value save_dir "${models_root}/policy/${dataset}__${seed}" "$@")
ensemble=$(flag_value ensemble 0 "$@")
reward_ensemble=$(flag_value reward_ensemble 0 "$@")
for pair in "ensemble=$ensemble" "reward_ensemble=$reward_ensemble"; do
  if ! [[ ${pair#*=} =~ ^[0-9]+$ ]]; then
    echo "error: --$pair: expected a non-negative integer" >&2
    exit 2
  fi
done
if [ "$ensemble" -gt 0 ] && [ "$reward_ensemble" -gt 0 ]; then
  echo "error: --ensemble=$ensemble and --reward_ensemble=$reward_ensemble: expected one" >&2
  exit 2
fi
# main_policy.py's settings (the flags given here replace them).
defaults=(
  --policy=all
  --k=5
  --n_candidates=0
  --horizon=10
  --gamma=0.9
  --learning_rate=0.001
  --num_itrs=2000
  --batch_size=64
  --epsilon_start=1.0
  --epsilon_end=0.05
  --epsilon_steps=1000
  --seed=0
)
own_flags="dataset data_folder user_model_itrs simulator_features models_root \
  user_model_dir test_user_model_dir save_dir ensemble ensemble_dirs reward_ensemble reward_dirs"
without_flags "$own_flags" "$@"
policy_args=(${kept_args[@]+"${kept_args[@]}"})
if [ ! -f "$data_folder/$dataset.pkl" ] || [ ! -f "$train_dir/results.json" ] ||
  [ ! -f "$test_dir/results.json" ] || [ "$ensemble" -gt 0 ] || [ "$reward_ensemble" -gt 0 ]; then
  # A mistyped flag stops the script before it prepares data or trains user models.
  "$PYTHON" experiment_policy/main_policy.py --user_model_dir="$train_dir" \
    --test_user_model_dir="$test_dir" --save_dir="$save_dir" "${defaults[@]}" \
    ${policy_args[@]+"${policy_args[@]}"} --check_flags
fi
ensure_dataset "$data_folder" "$dataset" ${data_args[@]+"${data_args[@]}"}
ensure_user_model "$data_folder" "$dataset" "$train_dir" LSTM 0 "$um_itrs" "$um_features"
ensure_user_model "$data_folder" "$dataset" "$test_dir" PW 1 "$um_itrs" "$um_features"
# --ensemble=N: N more LSTM user models (seeds 2 to N + 1) beside the training one; policies
# train in an ensemble of all but the last, rank by their mean reward and select snapshots in
# the last (main_policy.py's --ensemble_dirs, which, when given, is used as it is).
# --reward_ensemble=N: the same N models, but only GAN-Greedy and the learning policies'
# bounded residual rank by their mean reward with the training model's; training and
# selection stay the training model's (main_policy.py's --reward_dirs).
members=$(flag_value ensemble_dirs "" "$@")
reward_members=$(flag_value reward_dirs "" "$@")
if { [ -z "$members" ] && [ "$ensemble" -gt 0 ]; } ||
  { [ -z "$reward_members" ] && [ "$reward_ensemble" -gt 0 ]; }; then
  built=""
  for ((i = 2; i < ensemble + reward_ensemble + 2; i++)); do
    member="${models_root}/${dataset}__LSTM__entropy__${i}"
    ensure_user_model "$data_folder" "$dataset" "$member" LSTM "$i" "$um_itrs" "$um_features"
    built="${built:+$built,}$member"
  done
  if [ "$ensemble" -gt 0 ]; then members=$built; else reward_members=$built; fi
fi

# This script's own flags (own_flags) stay here; the rest go to main_policy.py.
exec "$PYTHON" experiment_policy/main_policy.py \
  --user_model_dir="$train_dir" \
  --test_user_model_dir="$test_dir" \
  --ensemble_dirs="$members" \
  --reward_dirs="$reward_members" \
  --save_dir="$save_dir" \
  "${defaults[@]}" \
  ${policy_args[@]+"${policy_args[@]}"}
