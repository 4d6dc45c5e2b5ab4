#!/usr/bin/env bash
# How many past clicks the PW encoder looks at (pw_band_size), entropy pre-training.
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
ablation_setup "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
run_variants "$(flag_value out "runs/ablations/$(flag_value dataset yelp "$@")/history_length" "$@")" \
  "band5=--user_model=PW,--pw_band_size=5" "band10=--user_model=PW,--pw_band_size=10" \
  "band20=--user_model=PW,--pw_band_size=20" "band40=--user_model=PW,--pw_band_size=40" \
  -- "$@"
