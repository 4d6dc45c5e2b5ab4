"""Prepares datasets in the data folder: `./process_data.sh --dataset NAME [flags]`.

Built-in names: `ml100k` (MovieLens 100k, downloaded and checked when absent), `retailrocket`
(an `events.csv`), `synthetic` (a generated log with its ground truth). Any other NAME reads
`DATA_FOLDER/NAME.txt` in the released format or, with `--columns`, a CSV of click logs
(`--csv_path`). Without `--dataset`: ml100k and every released-format `.txt` in the data
folder. Prints the configuration, then per dataset writes NAME.pkl, NAME-split.pkl,
NAME-stats.json and NAME-events/ (and NAME-users.csv, NAME-items.csv where ids are
re-indexed; NAME-truth.npz for synthetic) and prints one line of statistics; on bad input
prints one line `error: NAME: FILE: line N, field F: ...` and exits 1 (docs/data.md).
"""

from __future__ import annotations

import dataclasses
import json
import sys

from absl import app, flags

from ganrl.data.pipeline import READERS, PrepareConfig, default_names, prepare
from ganrl.data.safe_io import DataError
from ganrl.data.satiation import WORLD_NAME as SATIATION
from ganrl.data.satiation import SatiationConfig
from ganrl.data.synthetic import DEFAULT_WORLD, SyntheticConfig, world_names, world_settings

_DEFAULT = PrepareConfig()
_SYNTHETIC = SyntheticConfig()

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "dataset",
    "",
    "Dataset to prepare: ml100k, retailrocket, synthetic, or "
    "NAME for DATA_FOLDER/NAME.txt (released format; a CSV with --columns). "
    "Empty: ml100k and every released-format .txt in the data folder.",
)
flags.DEFINE_string(
    "data_folder", _DEFAULT.data_folder, "Folder of raw logs and processed datasets."
)
flags.DEFINE_integer(
    "seed",
    _DEFAULT.seed,
    "Seed: display-set shuffling, user splits drawn "
    "here, MovieLens fillers, the synthetic generator.",
)
flags.DEFINE_integer(
    "max_display",
    _DEFAULT.max_display,
    "ml100k: display set size; "
    "retailrocket: largest display set (page); synthetic: largest display set.",
)
flags.DEFINE_string(
    "ml100k_path",
    _DEFAULT.ml100k_path,
    "MovieLens 100k ratings: u.data or "
    "ml-100k.inter (u.item or ml-100k.item beside it), or a folder holding one. "
    "Default: the data folder, else downloaded.",
)
flags.DEFINE_boolean(
    "ml100k_download",
    _DEFAULT.ml100k_download,
    "ml100k: download the RecBole wheel with pip when no copy is found.",
)
flags.DEFINE_string(
    "retailrocket_path",
    _DEFAULT.retailrocket_path,
    "Retailrocket events.csv (default DATA_FOLDER/events.csv).",
)
flags.DEFINE_float(
    "session_gap_minutes",
    _DEFAULT.session_gap_minutes,
    "retailrocket: idle minutes that end a session.",
)
flags.DEFINE_enum(
    "world",
    DEFAULT_WORLD,
    world_names() + [SATIATION],
    "synthetic: "
    "HISTORY_DISPLAY_CLICKS: the history effect (mean of all earlier clicks, or "
    "lag-weighted last clicks), the display draw (uniform, or popular: by "
    "exp(gamma * bias)) and whether every display set has a click (always) or a "
    "no-click option competes (noclick); or 'satiation' (ganrl.data.satiation: "
    "topics users tire of, leaving after poor slates; of the flags below it "
    "takes --users, --items, --events_per_user, --min_display, --max_display, "
    "--feature_dim and --popularity_strength when given, else its defaults).",
)
flags.DEFINE_boolean(
    "synthetic_true_features",
    _SYNTHETIC.true_vectors_as_features,
    "synthetic: give models the true item vectors as dense features (tests "
    "the choice model alone, not learning item structure from ids).",
)
flags.DEFINE_integer("users", _SYNTHETIC.users, "synthetic: users.")
flags.DEFINE_integer("items", _SYNTHETIC.items, "synthetic: items.")
flags.DEFINE_integer(
    "events_per_user", _SYNTHETIC.events_per_user, "synthetic: display sets per user."
)
flags.DEFINE_integer("min_display", _SYNTHETIC.min_display, "synthetic: smallest display set.")
flags.DEFINE_integer(
    "feature_dim", _SYNTHETIC.feature_dim, "synthetic: dimension of item vectors and user tastes."
)
flags.DEFINE_float(
    "history_weight", _SYNTHETIC.history_weight, "synthetic: weight beta of the history effect."
)
flags.DEFINE_integer(
    "history_lags",
    _SYNTHETIC.history_lags,
    "synthetic, lag history: L, the earlier clicks that count.",
)
flags.DEFINE_float(
    "history_decay",
    _SYNTHETIC.history_decay,
    "synthetic, lag history: the weight of the l-th last click is beta * decay^(l - 1).",
)
flags.DEFINE_float(
    "popularity_strength",
    _SYNTHETIC.popularity_strength,
    "synthetic, popular display draw: gamma, items drawn by exp(gamma * bias).",
)
flags.DEFINE_float(
    "no_click_utility",
    _SYNTHETIC.no_click_utility,
    "synthetic, noclick worlds: utility of clicking nothing.",
)
flags.DEFINE_integer(
    "posterior_samples",
    _SYNTHETIC.posterior_samples,
    "synthetic: prior draws of the Bayes-optimal (reachable) predictor.",
)
flags.DEFINE_string(
    "csv_path",
    _DEFAULT.csv_path,
    "Generic reader: the CSV of click logs (default DATA_FOLDER/NAME.csv).",
)
flags.DEFINE_string(
    "columns", _DEFAULT.columns, "Generic reader: user=COL,time=COL,item=COL,click=COL[,split=COL]."
)
flags.DEFINE_string(
    "csv_sep", _DEFAULT.csv_sep, "Generic reader: field separator ('\\t' for a tab)."
)


def config_from_flags() -> PrepareConfig:
    """The flags as a `PrepareConfig`."""
    world = DEFAULT_WORLD if FLAGS.world == SATIATION else FLAGS.world
    synthetic = SyntheticConfig(
        users=FLAGS.users,
        items=FLAGS.items,
        events_per_user=FLAGS.events_per_user,
        min_display=FLAGS.min_display,
        max_display=FLAGS.max_display,
        feature_dim=FLAGS.feature_dim,
        **world_settings(world),
        history_weight=FLAGS.history_weight,
        history_lags=FLAGS.history_lags,
        history_decay=FLAGS.history_decay,
        popularity_strength=FLAGS.popularity_strength,
        no_click_utility=FLAGS.no_click_utility,
        true_vectors_as_features=FLAGS.synthetic_true_features,
        posterior_samples=FLAGS.posterior_samples,
    )
    return PrepareConfig(
        satiation=satiation_from_flags() if FLAGS.world == SATIATION else None,
        data_folder=FLAGS.data_folder,
        seed=FLAGS.seed,
        max_display=FLAGS.max_display,
        ml100k_path=FLAGS.ml100k_path,
        ml100k_download=FLAGS.ml100k_download,
        retailrocket_path=FLAGS.retailrocket_path,
        session_gap_minutes=FLAGS.session_gap_minutes,
        synthetic=synthetic,
        csv_path=FLAGS.csv_path,
        columns=FLAGS.columns,
        csv_sep=FLAGS.csv_sep,
    )


# The synthetic flags the satiation world shares (`satiation_from_flags`).
SATIATION_SETTINGS = (
    "users",
    "items",
    "events_per_user",
    "min_display",
    "max_display",
    "feature_dim",
    "popularity_strength",
)


def satiation_from_flags() -> SatiationConfig:
    """The satiation world's settings: its defaults, but the shared flags given."""
    return SatiationConfig(
        **{name: FLAGS[name].value for name in SATIATION_SETTINGS if FLAGS[name].present}
    )


# The generic CSV reader's flags: read only for a --dataset name that is not built in.
CSV_FLAGS = ("csv_path", "columns", "csv_sep")
SATIATION_FLAGS = ("world",) + SATIATION_SETTINGS
# What each kind of input reads, beyond --dataset, --data_folder and --seed.
READ_FLAGS = {
    "ml100k": ("max_display", "ml100k_path", "ml100k_download"),
    "retailrocket": ("max_display", "retailrocket_path", "session_gap_minutes"),
    "synthetic": SATIATION_FLAGS
    + (
        "synthetic_true_features",
        "history_weight",
        "history_lags",
        "history_decay",
        "no_click_utility",
        "posterior_samples",
    ),
    SATIATION: SATIATION_FLAGS,
    "csv": CSV_FLAGS,
    "released": (),
}
INPUT_FLAGS = sorted({name for names in READ_FLAGS.values() for name in names})


def inputs_read(dataset: str, columns: str, world: str) -> list[str]:
    """The kinds of input (`READ_FLAGS` keys) that `--dataset=dataset` prepares."""
    if not dataset:
        return ["ml100k", "released"]
    if dataset == "synthetic" and world == SATIATION:
        return [SATIATION]
    if dataset in READERS:
        return [dataset]
    return ["csv" if columns else "released"]


def unused_csv_flags(dataset: str, given: list[str], columns: str) -> str | None:
    """Why the CSV flags `given` would be ignored for `--dataset=dataset`, or None if they
    are read.

    Args:
      dataset: the `--dataset` value ('' when absent).
      given: the `CSV_FLAGS` given on the command line.
      columns: the `--columns` value.
    """
    if not given:
        return None
    named = "/".join("--" + name for name in given)
    builtin = ", ".join(READERS)
    if not dataset or dataset in READERS:
        instead = (
            "without --dataset, ml100k and the data folder's released-format .txt files are "
            "prepared"
            if not dataset
            else f"--dataset={dataset} reads its own files"
        )
        return (
            f"{named} {'is' if len(given) == 1 else 'are'} for your own CSV logs: give "
            f"--dataset=NAME other than the built-in ones ({builtin}); {instead}, so "
            f"{named} would be unused"
        )
    if not columns:
        return (
            f"{named} needs --columns=user=COL,time=COL,item=COL,click=COL[,split=COL]: "
            f"without it --dataset={dataset} reads DATA_FOLDER/{dataset}.txt in the released "
            f"format, so {named} would be unused"
        )
    return None


# How `unused_flags` names each kind of input.
INPUT_NAMES = {
    "ml100k": "MovieLens 100k",
    "retailrocket": "Retailrocket's events.csv",
    "synthetic": "the synthetic world",
    SATIATION: "the satiation world",
    "csv": "a CSV of click logs",
    "released": "released-format .txt files",
}


def unused_flags(dataset: str, given: list[str], columns: str, world: str) -> str | None:
    """Why some of the input flags `given` would be ignored for `--dataset=dataset`, or None
    if every one is read (so `--max_display` for a CSV, or `--history_lags` for the
    satiation world, is refused rather than silently unused)."""
    csv_message = unused_csv_flags(dataset, [f for f in CSV_FLAGS if f in given], columns)
    if csv_message:
        return csv_message
    kinds = inputs_read(dataset, columns, world)
    read = {name for kind in kinds for name in READ_FLAGS[kind]}
    unused = [name for name in given if name in INPUT_FLAGS and name not in read]
    if not unused:
        return None
    named = "/".join("--" + name for name in unused)
    what = " and ".join(INPUT_NAMES[kind] for kind in kinds)
    prepared = f"--dataset={dataset}" if dataset else "no --dataset"
    if SATIATION in kinds:
        prepared += f" --world={SATIATION}"
    readers = [INPUT_NAMES[k] for k, names in READ_FLAGS.items() if unused[0] in names]
    if len(readers) > 1:
        readers[-2:] = [f"{readers[-2]} or {readers[-1]}"]
    return (
        f"{named} {'is' if len(unused) == 1 else 'are'} not read when preparing {what} "
        f"({prepared}): --{unused[0]} is for {', '.join(readers)}, so {named} would be unused"
    )


def printed_config(config: PrepareConfig, kinds: list[str]) -> dict:
    """`config` as printed before preparing: the settings the inputs `kinds` read."""
    read = {name for kind in kinds for name in READ_FLAGS[kind]}
    read |= {kind for kind in ("synthetic", SATIATION) if kind in kinds}
    out = dataclasses.asdict(config)
    for name in set(INPUT_FLAGS + ["synthetic", SATIATION]) & set(out) - read:
        del out[name]
    return out


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(
            f"error: unexpected arguments {argv[1:]} (flags are --NAME=VALUE; see --help)",
            file=sys.stderr,
        )
        return 2
    given = [name for name in INPUT_FLAGS if FLAGS[name].present]
    unused = unused_flags(FLAGS.dataset, given, FLAGS.columns, FLAGS.world)
    if unused:
        print(f"error: {unused}", file=sys.stderr)
        return 1
    config = config_from_flags()
    kinds = inputs_read(FLAGS.dataset, FLAGS.columns, FLAGS.world)
    print(f"config: {json.dumps(printed_config(config, kinds))}", flush=True)
    names = [FLAGS.dataset] if FLAGS.dataset else default_names(config.data_folder)
    failed = 0
    for name in names:
        try:
            prepared = prepare(name, config)
        except (DataError, OSError) as e:
            message = " ".join(str(e).split())  # one line, whatever the cause
            print(f"error: {name}: {message}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(f"{name}: {json.dumps(prepared.summary())}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
