# Shared by the run_*.sh scripts: flag lookup and dataset preparation. Source, don't run.

# flag_value NAME DEFAULT ARGS...: the last --NAME=VALUE or --NAME VALUE in ARGS, else DEFAULT.
flag_value() {
  local name=$1 value=$2
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --"$name"=*) value=${1#*=} ;;
      --"$name") [ $# -gt 1 ] && { value=$2; shift; } ;;
    esac
    shift
  done
  printf '%s\n' "$value"
}

# ensure_dataset DATA_FOLDER DATASET: runs process_data.sh when DATASET's pickle is missing.
ensure_dataset() {
  if [ ! -f "$1/$2.pkl" ]; then
    echo "preparing dataset $2 in $1" >&2
    ./process_data.sh --dataset "$2" --data_folder "$1"
  fi
}
