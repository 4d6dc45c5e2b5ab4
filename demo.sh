#!/usr/bin/env bash
# The README's main job on its default dataset, MovieLens 100k (fetched by process_data.sh):
# prepare the data, train and evaluate the GAN user model. Run through `make demo`, which sets
# up the virtual environment first. DATASET=yelp ./demo.sh uses dropbox/yelp.txt instead.
set -euo pipefail
cd "$(dirname "$0")"
export PYTHON=${PYTHON:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=3
dataset=${DATASET:-ml100k}

./process_data.sh --dataset "$dataset" --data_folder dropbox
cat "dropbox/$dataset-stats.json"
experiment_user_model/run_gan_user_model.sh --dataset="$dataset" --save_dir="runs/demo/$dataset"
