#!/usr/bin/env bash
# Adversarial training from scratch against adversarial fine-tuning of the entropy
# pre-trained model (the paper's recipe). Flags after the script apply to every run:
#   experiment_user_model/ablations/no_pretraining.sh --dataset=tb --num_itrs=500
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
ablation_setup "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
run_variants "$(flag_value out "runs/ablations/$(flag_value dataset yelp "$@")/no_pretraining" "$@")" \
  "entropy=--regularizer=entropy" \
  "L2_from_entropy=--regularizer=L2,--learning_rate=0.0001,@entropy" \
  "L2_from_scratch=--regularizer=L2,--learning_rate=0.0001" -- "$@"
