# Shared by the run_*.sh scripts: the interpreter, flag lookup and dataset preparation.
# Source, don't run.

# The interpreter, exported for the scripts these call: $PYTHON when set; else, when no
# virtualenv is active, the repository's .venv (`make venv`) if there is one; else python3.
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$repository/.venv/bin/python" ]; then
    PYTHON=$repository/.venv/bin/python
  fi
fi
export PYTHON

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

# ensure_user_model DATA_FOLDER DATASET DIR ENCODER SEED ITRS FEATURES: trains an entropy user
# model into DIR (run_gan_user_model.sh's settings, ITRS iterations, --item_features=FEATURES)
# unless DIR is a finished run.
# The policy experiments' simulators: training LSTM seed 0, test PW seed 1 (another encoder
# and initialisation).
ensure_user_model() {
  if [ ! -f "$3/results.json" ]; then
    echo "training user model $3" >&2
    experiment_user_model/run_gan_user_model.sh --dataset="$2" --data_folder="$1" \
      --user_model="$4" --seed="$5" --num_itrs="$6" --item_features="$7" --save_dir="$3"
  fi
}
