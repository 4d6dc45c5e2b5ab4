"""Prepares datasets in the data folder: `./process_data.sh --dataset NAME [flags]`.

Built-in names: `ml100k` (MovieLens 100k, fetched when absent), `retailrocket` (an
`events.csv`), `synthetic` (a generated log with its ground truth); any other NAME reads
`DATA_FOLDER/NAME.txt` in the released format, or, with `--columns`, any CSV of click logs
(`--csv_path`). Without `--dataset`, prepares ml100k and every released-format `.txt` in the
data folder. Writes NAME.pkl, NAME-split.pkl, NAME-stats.json and NAME-events/ (and
NAME-truth.npz for synthetic); see docs/data.md.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from ganrl.data import dataset as layout
from ganrl.data.convert import Converted
from ganrl.data.movielens import find_ml100k, read_ml100k
from ganrl.data.released import (is_released_format, parse_column_mapping, read_csv_logs,
                                 read_released)
from ganrl.data.retailrocket import read_retailrocket
from ganrl.data.safe_io import DataError
from ganrl.data.synthetic import make_synthetic, save_truth

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "", "Dataset to prepare: ml100k, retailrocket, synthetic, or "
                    "NAME for DATA_FOLDER/NAME.txt (released format). Empty: ml100k and every "
                    "released-format .txt in the data folder.")
flags.DEFINE_string("data_folder", "dropbox", "Folder of raw logs and processed datasets.")
flags.DEFINE_integer("seed", 0, "Seed: display-set shuffling, drawn splits, generators.")
flags.DEFINE_string("ml100k_path", "", "MovieLens 100k ratings (u.data or ml-100k.inter, with "
                    "u.item or ml-100k.item beside it); default: the data folder, else fetched.")
flags.DEFINE_string("retailrocket_path", "", "Retailrocket events.csv (default "
                    "DATA_FOLDER/events.csv).")
flags.DEFINE_float("session_gap_minutes", 30.0, "Retailrocket: idle minutes that end a session.")
flags.DEFINE_integer("max_display", 10, "ml100k, retailrocket, synthetic: largest display set.")
flags.DEFINE_integer("users", 2000, "synthetic: users.")
flags.DEFINE_integer("items", 600, "synthetic: items.")
flags.DEFINE_integer("events_per_user", 8, "synthetic: display sets per user.")
flags.DEFINE_integer("feature_dim", 8, "synthetic: dimension of item vectors and tastes.")
flags.DEFINE_integer("posterior_samples", 3000, "synthetic: importance samples of the "
                     "Bayes-optimal predictor.")
flags.DEFINE_string("csv_path", "", "Generic reader: the CSV of click logs (default "
                    "DATA_FOLDER/NAME.csv).")
flags.DEFINE_string("columns", "", "Generic reader: user=COL,time=COL,item=COL,click=COL"
                    "[,split=COL].")
flags.DEFINE_string("csv_sep", ",", "Generic reader: field separator.")


def prepare(name: str) -> dict:
    """Converts dataset `name` and writes its files; returns its statistics."""
    folder, seed = FLAGS.data_folder, FLAGS.seed
    os.makedirs(folder, exist_ok=True)
    truth = None
    if name == "ml100k":
        path = find_ml100k(folder, FLAGS.ml100k_path or None)
        converted = read_ml100k(path, name, seed, FLAGS.max_display)
    elif name == "retailrocket":
        path = FLAGS.retailrocket_path or os.path.join(folder, "events.csv")
        converted = read_retailrocket(path, name, seed, FLAGS.session_gap_minutes,
                                      FLAGS.max_display)
    elif name == "synthetic":
        converted, truth = make_synthetic(folder, name, seed, FLAGS.users, FLAGS.items,
                                          FLAGS.events_per_user, FLAGS.max_display,
                                          FLAGS.feature_dim, FLAGS.posterior_samples)
    elif FLAGS.columns:
        path = FLAGS.csv_path or os.path.join(folder, name + ".csv")
        converted = read_csv_logs(path, name, seed, parse_column_mapping(FLAGS.columns),
                                  FLAGS.csv_sep)
    else:
        converted = read_released(os.path.join(folder, name + ".txt"), name, seed)
    write(folder, converted)
    if truth is not None:
        save_truth(layout.paths(folder, name)["truth"], truth)
    return converted.stats


def write(folder: str, converted: Converted) -> None:
    """All outputs of one dataset, each written atomically."""
    layout.save_dataset(folder, converted.dataset, converted.stats)
    layout.save_event_splits(folder, converted.split_data())


def default_names(folder: str) -> list[str]:
    names = ["ml100k"]
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            if f.endswith(".txt") and is_released_format(os.path.join(folder, f)):
                names.append(f[:-4])
    return names


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    names = [FLAGS.dataset] if FLAGS.dataset else default_names(FLAGS.data_folder)
    for name in names:
        try:
            stats = prepare(name)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{name}: {json.dumps(stats)}", flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
