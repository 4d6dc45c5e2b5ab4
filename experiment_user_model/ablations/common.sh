# Shared by the ablation scripts. Source, don't run.
# run_variants OUT LABEL=FLAGS... -- ARGS...: trains one user-model run per variant into
# OUT/LABEL (run_gan_user_model.sh, so its settings, then the variant's FLAGS (comma-separated),
# then ARGS but --out; finished runs are reused), then draws the validation curves and prints
# the summary table with `python -m ganrl.reporting.compare` into OUT/compare.
# A FLAGS entry @LABEL stands for --pretrain_dir=OUT/LABEL (adversarial fine-tuning from it).
run_variants() {
  local out=$1 variant label flags dirs=() variants=()
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do variants+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  local args=() arg
  for arg in "$@"; do
    case $arg in --out=*) ;; *) args+=("$arg") ;; esac
  done
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
    if [ ! -f "$out/$label/results.json" ]; then
      echo "training $out/$label" >&2
      experiment_user_model/run_gan_user_model.sh ${flags[@]+"${flags[@]}"} \
        ${args[@]+"${args[@]}"} --save_dir="$out/$label"
    fi
    dirs+=("$out/$label")
  done
  "$PYTHON" -m ganrl.reporting.compare "${dirs[@]}" --out "$out/compare"
}

# ablation_setup: the common prologue (repository root, interpreter, dataset).
ablation_setup() {
  cd "$(dirname "$0")/../.."
  source experiment_user_model/common.sh
  export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
  ensure_dataset "$(flag_value data_folder dropbox "$@")" "$(flag_value dataset yelp "$@")"
}
