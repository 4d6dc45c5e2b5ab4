#!/usr/bin/env bash
# Entropy pre-training alone against entropy then adversarial (L2) fine-tuning, both encoders.
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
ablation_setup "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
run_variants "$(flag_value out "runs/ablations/$(flag_value dataset yelp "$@")/entropy_vs_adversarial" "$@")" \
  "LSTM_entropy=--user_model=LSTM" \
  "LSTM_L2=--user_model=LSTM,--regularizer=L2,--learning_rate=0.0001,@LSTM_entropy" \
  "PW_entropy=--user_model=PW" \
  "PW_L2=--user_model=PW,--regularizer=L2,--learning_rate=0.0001,@PW_entropy" -- "$@"
