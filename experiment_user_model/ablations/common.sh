# Shared by the ablation scripts. Source, don't run.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# run_variants OUT LABEL=FLAGS... -- ARGS...: trains one user-model run per variant into
# OUT/LABEL (run_gan_user_model.sh, so its settings, then the variant's FLAGS (comma-separated),
# then ARGS but --out; a finished run is reused, one with other flags refused), then draws the validation curves and prints
# the summary table with `python -m ganrl.reporting.compare` into OUT/compare.
# A FLAGS entry @LABEL stands for --pretrain_dir=OUT/LABEL (adversarial fine-tuning from it).
run_variants() {
  local out=$1 variant label flags dirs=() variants=()
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do variants+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  without_flags out "$@"
  refuse_variant_flags "${variants[@]}" -- ${kept_args[@]+"${kept_args[@]}"}
  for variant in "${variants[@]}"; do
    label=${variant%%=*}
    flags=()
    IFS=, read -r -a parts <<<"${variant#*=}"
    for flag in "${parts[@]}"; do
      case $flag in
        @*) flags+=("--pretrain_dir=$out/${flag#@}") ;;
        ?*) flags+=("$flag") ;;
      esac
    done
    # A finished run is reused by the trainer itself, which first refuses other flags.
    if [ -f "$out/$label/results.json" ]; then
      echo "reusing $out/$label (if its flags are these)" >&2
    else
      echo "training $out/$label" >&2
    fi
    experiment_user_model/run_gan_user_model.sh ${flags[@]+"${flags[@]}"} \
      ${kept_args[@]+"${kept_args[@]}"} --save_dir="$out/$label"
    dirs+=("$out/$label")
  done
  "$PYTHON" -m ganrl.reporting.compare "${dirs[@]}" --out="$out/compare"
}

# refuse_variant_flags LABEL=FLAGS... -- ARGS...: exits with an error naming the flag when
# ARGS set a flag that a variant sets (the caller's value would win in every variant, so the
# table would compare identical runs under the variants' labels).
refuse_variant_flags() {
  local variant flag name names=" " arg
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    variant=$1
    shift
    IFS=, read -r -a parts <<<"${variant#*=}"
    for flag in "${parts[@]}"; do
      case $flag in
        @*) names+="pretrain_dir " ;;
        --*) name=${flag%%=*}; name=${name#--}; names+="$name ${name#no} no$name " ;;
      esac
    done
  done
  [ $# -gt 0 ] && shift
  for arg in "$@"; do
    name=${arg%%=*}
    name=${name#--}
    if [[ $arg == --* && $names == *" $name "* ]]; then
      echo "error: --$name is what this ablation varies (its variants set it); leave it out" >&2
      exit 1
    fi
  done
}

# ablation_setup ARGS...: the common prologue after enter_repository: prepares the dataset
# (with process_data.sh's own flags among ARGS) and sets `kept_args` to ARGS without those.
# Use as
#   ablation_setup "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
ablation_setup() {
  export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
  split_data_flags "$@"
  # A mistyped flag stops the script before the data step.
  without_flags out ${kept_args[@]+"${kept_args[@]}"}
  "$PYTHON" experiment_user_model/main_gan_user_model.py ${kept_args[@]+"${kept_args[@]}"} \
    --check_flags
  split_data_flags "$@"
  ensure_dataset "$(flag_value data_folder dropbox "$@")" "$(flag_value dataset yelp "$@")" \
    ${data_args[@]+"${data_args[@]}"}
}
