#!/usr/bin/env bash
# Utility-MLP sizes (dims) and LSTM units (rnn_hidden_dim), entropy pre-training.
set -euo pipefail
source "$(dirname "$0")/common.sh"
enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
ablation_setup "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
run_variants "$(flag_value out "runs/ablations/$(flag_value dataset yelp "$@")/hidden_sizes" "$@")" \
  "dims32=--dims=32-32" "dims64=--dims=64-64" "dims128=--dims=128-128" \
  "lstm10=--rnn_hidden_dim=10" "lstm40=--rnn_hidden_dim=40" -- "$@"
