#!/usr/bin/env bash
# The position-weighted history encoder against the LSTM (entropy pre-training).
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
ablation_setup "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
run_variants "$(flag_value out "runs/ablations/$(flag_value dataset yelp "$@")/pw_vs_lstm" "$@")" \
  "PW=--user_model=PW" "LSTM=--user_model=LSTM" -- "$@"
