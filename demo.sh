#!/usr/bin/env bash
# The README's main job on its default dataset, MovieLens 100k (fetched by process_data.sh):
# prepare the data; train the user model of the training simulator (LSTM, seed 0) and, apart,
# the one of the test simulator (PW, seed 1), 500 iterations each, into runs/demo/ under the
# names run_policy.sh looks for; train the cascading DQN and every other registered policy
# (PPO, A2C, DDPG, LinUCB and the baselines) in the first and compare them in the second.
# Run through `make demo`, which sets up the virtual environment first. Flags:
# --dataset (default ml100k; yelp reads dropbox/yelp.txt), --user_model_itrs (500), and any
# flag of run_policy.sh, which come after the demo's settings, and process_data.sh's own
# flags (--columns, --csv_path, ...), which prepare the dataset. DATASET and USER_MODEL_ITRS in
# the environment set the first two as well.
set -euo pipefail
source "$(dirname "$0")/experiment_user_model/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
export TF_CPP_MIN_LOG_LEVEL=3
dataset=$(flag_value dataset "${DATASET:-ml100k}" "$@")
itrs=$(flag_value user_model_itrs "${USER_MODEL_ITRS:-500}" "$@")
data_folder=$(flag_value data_folder dropbox "$@")
models_root=$(flag_value models_root runs/demo "$@")

split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
./process_data.sh --dataset="$dataset" --data_folder="$data_folder" \
  ${data_args[@]+"${data_args[@]}"}
experiment_policy/run_policy.sh --dataset="$dataset" --user_model_itrs="$itrs" \
  --models_root="$models_root" --n_candidates=100 --num_itrs=1000 --eval_users=500 \
  --adapt_itrs=100 --regret_itrs=100 "$@"
policy_dir=$models_root/policy/${dataset}__$(flag_value seed 0 "$@")
policy_dir=$(flag_value save_dir "$policy_dir" "$@")
cat <<END

The demo's run folders are in $models_root: the user models ${dataset}__LSTM__entropy__0
(training simulator) and ${dataset}__PW__entropy__1 (test simulator), and the policies' run
$policy_dir (results.json, curves.png). The run scripts reuse these user models:
  experiment_policy/run_policy.sh --dataset=$dataset --models_root=$models_root --policy=cdqn,random
  experiment_policy/run_comparison.sh --datasets=$dataset --models_root=$models_root --seeds=0,1
END
