"""Preparing datasets: the library behind `process_data.sh` (docs/data.md).

`prepare(name, config)` converts one dataset and writes, in `config.data_folder`, atomically:
`NAME.pkl`, `NAME-split.pkl`, `NAME-stats.json`, the memory-mapped `NAME-events/`, for the
readers that re-index ids (CSV, Retailrocket, MovieLens) the original ids of the dense ones
(`NAME-users.csv`, `NAME-items.csv`) and, for the synthetic generator, `NAME-truth.npz`.
Nothing is written before the whole conversion has succeeded, so bad input leaves no output
behind (the synthetic generator writes its `NAME.txt` first and removes it when the
conversion is refused, unless it was there before the call).

Which reader reads `name`:
- a built-in name (`READERS`): `ml100k`, `retailrocket`, `synthetic`;
- any other name with `config.columns` set: the generic CSV reader (`ganrl.data.csv_logs`) on
  `config.csv_path` (default `DATA_FOLDER/NAME.csv`);
- any other name: the released-format reader on `DATA_FOLDER/NAME.txt`.
`default_names` lists what `process_data.sh` prepares without `--dataset`: ml100k and every
released-format `.txt` of the data folder (except those named like a built-in reader, such as
the `synthetic.txt` that the generator leaves there: they are regenerated only on request).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from ganrl.data import dataset as layout
from ganrl.data.convert import Converted
from ganrl.data.csv_logs import parse_column_mapping, read_csv_logs
from ganrl.data.movielens import find_ml100k, read_ml100k
from ganrl.data.released import is_released_format, read_released
from ganrl.data.retailrocket import read_retailrocket
from ganrl.data.safe_io import DataError, make_folder
from ganrl.data.satiation import SatiationConfig, make_satiation
from ganrl.data.synthetic import SyntheticConfig, make_synthetic, save_truth, truth_summary


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Settings of `prepare` (the flags of `process_data.sh`).

    Attributes:
      data_folder: raw logs in, processed datasets out.
      seed: shuffles display sets, draws user splits, fillers and synthetic data.
      max_display: largest display set (ml100k, retailrocket, synthetic).
      ml100k_path: a MovieLens ratings file (`u.data`, `ml-100k.inter`) or a folder holding
        one; empty: the data folder, else downloaded.
      ml100k_download: whether MovieLens may be downloaded when no copy is found.
      retailrocket_path: the Retailrocket `events.csv` (empty: `DATA_FOLDER/events.csv`).
      session_gap_minutes: Retailrocket's session gap.
      synthetic: the synthetic generator's settings (its `max_display` is `max_display`).
      satiation: when set, `synthetic` generates the satiation world instead
        (`ganrl.data.satiation`, `--world=satiation`; its own `max_display`).
      csv_path: generic reader: the CSV (empty: `DATA_FOLDER/NAME.csv`).
      columns: generic reader: `user=COL,time=COL,item=COL,click=COL[,split=COL]`.
      csv_sep: generic reader: the field separator.
    """

    data_folder: str = "dropbox"
    seed: int = 0
    max_display: int = 10
    ml100k_path: str = ""
    ml100k_download: bool = True
    retailrocket_path: str = ""
    session_gap_minutes: float = 30.0
    synthetic: SyntheticConfig = SyntheticConfig()
    satiation: SatiationConfig | None = None
    csv_path: str = ""
    columns: str = ""
    csv_sep: str = ","


@dataclasses.dataclass
class Prepared:
    """A converted dataset and, for synthetic data, its ground truth."""

    converted: Converted
    truth: dict | None = None

    @property
    def name(self) -> str:
        return self.converted.dataset.name

    def summary(self) -> dict:
        """The statistics, with the synthetic limits under `truth` when there are some."""
        out = dict(self.converted.stats)
        if self.truth is not None:
            out["truth"] = truth_summary(self.truth)
        return out


def _ml100k(name: str, config: PrepareConfig) -> Prepared:
    path = find_ml100k(config.data_folder, config.ml100k_path or None, config.ml100k_download)
    return Prepared(read_ml100k(path, name, config.seed, config.max_display))


def _retailrocket(name: str, config: PrepareConfig) -> Prepared:
    path = config.retailrocket_path or os.path.join(config.data_folder, "events.csv")
    return Prepared(
        read_retailrocket(path, name, config.seed, config.session_gap_minutes, config.max_display)
    )


def _synthetic(name: str, config: PrepareConfig) -> Prepared:
    if config.satiation is not None:
        return Prepared(*make_satiation(config.data_folder, name, config.seed, config.satiation))
    settings = dataclasses.replace(config.synthetic, max_display=config.max_display)
    converted, truth = make_synthetic(config.data_folder, name, config.seed, settings)
    return Prepared(converted, truth)


def _csv(name: str, config: PrepareConfig) -> Prepared:
    path = config.csv_path or os.path.join(config.data_folder, name + ".csv")
    return Prepared(
        read_csv_logs(path, name, config.seed, parse_column_mapping(config.columns), config.csv_sep)
    )


def _released(name: str, config: PrepareConfig) -> Prepared:
    path = os.path.join(config.data_folder, name + ".txt")
    if not os.path.exists(path):
        raise DataError(
            f"{path}: no such file: --dataset={name} is not a built-in name "
            f"({', '.join(READERS)}), so NAME.txt in the data folder (released "
            "format) or, with --columns, a CSV was expected"
        )
    return Prepared(read_released(path, name, config.seed))


# Built-in dataset names -> their reader.
READERS: dict[str, Callable[[str, PrepareConfig], Prepared]] = {
    "ml100k": _ml100k,
    "retailrocket": _retailrocket,
    "synthetic": _synthetic,
}


def reader_for(name: str, config: PrepareConfig) -> Callable[[str, PrepareConfig], Prepared]:
    """The reader of dataset `name` (see the module docstring)."""
    if name in READERS:
        return READERS[name]
    return _csv if config.columns else _released


def convert(name: str, config: PrepareConfig) -> Prepared:
    """Reads and converts dataset `name` without writing its outputs."""
    make_folder(config.data_folder, "--data_folder")
    return reader_for(name, config)(name, config)


def write_outputs(data_folder: str, prepared: Prepared) -> None:
    """Writes every output of a converted dataset, each file atomically."""
    converted = prepared.converted
    layout.save_dataset(data_folder, converted.dataset, converted.stats)
    layout.save_event_splits(data_folder, converted.split_data())
    names = layout.paths(data_folder, prepared.name)
    for kind, id_map in (("user", converted.user_map), ("item", converted.item_map)):
        if id_map is not None:
            id_map.save(names[kind + "s"], kind)
        elif os.path.exists(names[kind + "s"]):
            os.remove(names[kind + "s"])  # another reader's, stale: these ids are not remapped
    if prepared.truth is not None:
        save_truth(layout.paths(data_folder, prepared.name)["truth"], prepared.truth)


def prepare(name: str, config: PrepareConfig) -> Prepared:
    """Converts dataset `name` and writes its outputs in `config.data_folder`.

    Raises:
      DataError: bad input, naming the file, line and field, or a user split with no train,
        validation or test user (too few users to train on); nothing is written then.
    """
    layout.paths(config.data_folder, name)  # a name that is a path is refused before any reading
    # The generator writes its log before converting it; a log this call created goes again
    # when the conversion is refused, so a refused run leaves nothing new behind.
    log = os.path.join(config.data_folder, name + ".txt")
    new_log = READERS.get(name) is _synthetic and not os.path.exists(log)
    try:
        prepared = convert(name, config)
        converted = prepared.converted
        source = converted.source or name
        if READERS.get(name) is _synthetic:  # a generated log may be gone after the refusal
            source = f"the generated world (--users={(config.satiation or config.synthetic).users})"
        layout.require_every_split([len(part) for part in converted.dataset.split], source)
        write_outputs(config.data_folder, prepared)
    except BaseException:
        if new_log and os.path.exists(log):
            os.remove(log)
        raise
    return prepared


def default_names(data_folder: str) -> list[str]:
    """ml100k and every released-format `NAME.txt` in `data_folder` (not built-in names)."""
    names = ["ml100k"]
    if os.path.isdir(data_folder):
        for file_name in sorted(os.listdir(data_folder)):
            stem, extension = os.path.splitext(file_name)
            if (
                extension == ".txt"
                and stem not in READERS
                and is_released_format(os.path.join(data_folder, file_name))
            ):
                names.append(stem)
    return names
