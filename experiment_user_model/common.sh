# Shared by the shell scripts: the interpreter, the caller's flags, flag lookup and the
# preparation of datasets and user models. Source, don't run.

# The repository root: the scripts run from there and their default paths (dropbox, runs/...)
# are relative to it.
repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The interpreter, exported for the scripts these call: $PYTHON when set (a relative path is
# taken from the caller's folder); else, when no virtualenv is active, the repository's .venv
# (`make venv`) if there is one; else python3.
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$repository/.venv/bin/python" ]; then
    PYTHON=$repository/.venv/bin/python
  fi
elif [[ $PYTHON == */* && $PYTHON != /* ]]; then
  PYTHON=$PWD/$PYTHON
fi
export PYTHON

# The library the scripts import is this checkout's own, even when the interpreter's
# environment has ganrl installed from another checkout (an editable install elsewhere).
export PYTHONPATH="${repository}${PYTHONPATH:+:${PYTHONPATH}}"

# The flags that name a file or folder: a relative value is taken from the caller's folder.
PATH_FLAGS=(data_folder save_dir out pretrain_dir user_model_dir test_user_model_dir
            models_root ml100k_path retailrocket_path csv_path flagfile)
# The flags whose value is a comma-separated list of such paths.
PATH_LIST_FLAGS=(ensemble_dirs reward_dirs)

# enter_repository ARGS...: sets the array `script_args` to ARGS with every `--name value`
# written `--name=value` (a value is the next argument unless it starts with a dash and is not
# a negative number) and every relative value of a PATH_FLAGS flag (and every relative path
# in the list of a PATH_LIST_FLAGS flag) made absolute against the current folder, then
# changes to the repository root. Use as
#   enter_repository "$@"; set -- ${script_args[@]+"${script_args[@]}"}
enter_repository() {
  local arg name value path_flag
  script_args=()
  while [ $# -gt 0 ]; do
    arg=$1
    shift
    if [[ $arg == --?* && $arg != *=* && $# -gt 0 ]] && [[ $1 != -* || $1 =~ ^-[0-9.] ]]; then
      arg=$arg=$1
      shift
    fi
    if [[ $arg == --?*=* ]]; then
      name=${arg%%=*}
      name=${name#--}
      value=${arg#*=}
      for path_flag in "${PATH_FLAGS[@]}"; do
        if [ "$name" = "$path_flag" ] && [ -n "$value" ] && [[ $value != /* ]]; then
          arg=--$name=$PWD/$value
        fi
      done
      for path_flag in "${PATH_LIST_FLAGS[@]}"; do
        if [ "$name" = "$path_flag" ] && [ -n "$value" ]; then
          local item items=() absolute=()
          IFS=, read -r -a items <<< "$value"
          for item in "${items[@]}"; do
            [[ $item == /* ]] || item=$PWD/$item
            absolute+=("$item")
          done
          arg=--$name=$(IFS=,; printf '%s' "${absolute[*]}")
        fi
      done
    fi
    script_args+=("$arg")
  done
  cd "$repository"
}

# without_flags "NAME..." ARGS...: sets the array `kept_args` to ARGS less the flags NAME (in
# the forms enter_repository leaves: --NAME=VALUE and --NAME).
without_flags() {
  local names=" $1 " arg name
  shift
  kept_args=()
  for arg in "$@"; do
    name=${arg%%=*}
    name=${name#--}
    if [[ $arg == --* && $names == *" $name "* ]]; then
      continue
    fi
    kept_args+=("$arg")
  done
}

# The flags of process_data.sh that no trainer reads (all but dataset, data_folder and seed,
# boolean ones in both forms): the run scripts pass them to the data step (ensure_dataset) and
# not to the trainers (split_data_flags).
DATA_FLAGS="csv_path columns csv_sep max_display ml100k_path ml100k_download noml100k_download
  retailrocket_path session_gap_minutes world synthetic_true_features nosynthetic_true_features
  users items events_per_user min_display feature_dim history_weight history_lags history_decay
  popularity_strength no_click_utility posterior_samples"

# split_data_flags ARGS...: sets the array `data_args` to the DATA_FLAGS flags of ARGS (in the
# forms enter_repository leaves) and `kept_args` to the other arguments. Use as
#   split_data_flags "$@"; set -- ${kept_args[@]+"${kept_args[@]}"}
split_data_flags() {
  local arg name names=" ${DATA_FLAGS//$'\n'/ } "
  data_args=()
  for arg in "$@"; do
    name=${arg%%=*}
    name=${name#--}
    if [[ $arg == --* && $names == *" $name "* ]]; then
      data_args+=("$arg")
    fi
  done
  without_flags "$names" "$@"
}

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

# ensure_dataset DATA_FOLDER DATASET [DATA_ARGS...]: runs process_data.sh with DATA_ARGS (the
# data step's flags, `data_args` of split_data_flags) when DATASET's pickle is missing; when
# it is there, says that DATA_ARGS are not used.
ensure_dataset() {
  local folder=$1 dataset=$2
  shift 2
  if [ ! -f "$folder/$dataset.pkl" ]; then
    echo "preparing dataset $dataset in $folder" >&2
    ./process_data.sh --dataset="$dataset" --data_folder="$folder" "$@"
  elif [ $# -gt 0 ]; then
    echo "dataset $dataset in $folder is prepared already: $* not used (remove" \
      "$folder/$dataset.pkl to prepare it again)" >&2
  fi
}

# ensure_user_model DATA_FOLDER DATASET DIR ENCODER SEED ITRS FEATURES: trains an entropy user
# model into DIR (run_gan_user_model.sh's settings, ITRS iterations, --item_features=FEATURES)
# unless DIR is a finished run; says which it does.
# The policy experiments' simulators: training LSTM seed 0, test PW seed 1 (another encoder
# and initialisation).
ensure_user_model() {
  if [ -f "$3/results.json" ]; then
    echo "user model $3: a finished run, reused" >&2
    return
  fi
  echo "training user model $3 ($4, seed $5, $6 iterations, $7 item features): no finished" \
    "run there; --models_root, --user_model_dir and --test_user_model_dir choose the folders" >&2
  experiment_user_model/run_gan_user_model.sh --dataset="$2" --data_folder="$1" \
    --user_model="$4" --seed="$5" --num_itrs="$6" --item_features="$7" --save_dir="$3"
}
