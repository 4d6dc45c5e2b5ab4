"""The processed dataset: the original code's pickle layout, item features and the user split.

On disk, for a dataset `NAME` in the data folder (all written atomically):

- `NAME.pkl`: two pickled objects, in order:
    1. `data_behavior`: a list with one entry per user, `[user_id, displays, clicks]`, where
       `displays[t]` is the list of item ids shown at step t and `clicks[t]` the clicked item
       id at step t, or -1 when the user clicked nothing (the original code's layout, Python 3
       pickles).
    2. the item features, in one of two forms:
       - a 2-D float array `[n_items, feature_dim]` (the original layout; an identity matrix
         means one-hot item ids), used for catalogues of at most 1,000 items; or
       - the compact form, a dict `{"format": "ganrl-item-features-v1", "n_items": int,
         "identity": bool, "dense": float32 array [n_items, d] or None, "columns": [str]}`:
         features are the one-hot item id (when `identity`, turned into an embedding lookup
         by the model, never materialised) followed by the `dense` side features.
- `NAME-split.pkl`: three pickled lists of user ids: train, validation, test.
- `NAME-stats.json`: counts of the conversion (see `ganrl.data.stats`).
- `NAME-events/`: the same events as memory-mappable arrays, one folder per split
    (`save_event_splits`, `EventArrays.save`), plus `item_features.pkl` and `sources.json`,
    the size and mtime_ns of the `NAME.pkl` and `NAME-split.pkl` it was built from: when they
    no longer match (the pickles replaced or truncated), `load_split_data` rebuilds the folder
    from the pickles.
- `NAME-truth.npz`: synthetic data only, the ground truth (see `ganrl.data.synthetic`).
- `NAME-users.csv`, `NAME-items.csv`: readers that re-index ids only (a CSV through
    `--columns`, Retailrocket, MovieLens): the input's own id of each dense user and item id,
    header `user_id,COLUMN` (`item_id,COLUMN`; COLUMN the input's column, or `user`/`item`
    when that is named `user_id`/`item_id` too), one line per dense id in order
    (`ganrl.data.convert.IdMap`).

Extending the layout: new per-item side features go into the compact dict's `dense` columns
(named in `columns`); a new kind of output is a new file `NAME-<what>`, never a third object in
`NAME.pkl`, so readers of the original two-object layout keep working.

Training reads the behaviour through `EventArrays`: one row per display set (event), display
sets padded to a fixed `max_display` with a mask, so batches have static inner shapes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from typing import Any, NoReturn, Sequence

import numpy as np

from ganrl.data import safe_io
from ganrl.data.safe_io import DataError

FEATURES_FORMAT = "ganrl-item-features-v1"
# Catalogues up to this size keep the original dense one-hot matrix in the pickle.
DENSE_ONE_HOT_MAX_ITEMS = 1000
NO_CLICK = -1


@dataclasses.dataclass(frozen=True)
class ItemFeatures:
    """Features of every item: an optional one-hot identity followed by dense side features.

    Attributes:
        n_items: number of items; item ids are 0..n_items-1.
        identity: whether the features start with a one-hot item id (an embedding lookup).
        dense: float32 `[n_items, d]` side features, or None.
        columns: names of the `dense` columns.
    """

    n_items: int
    identity: bool = True
    dense: np.ndarray | None = None
    columns: tuple[str, ...] = ()

    @property
    def dense_dim(self) -> int:
        return 0 if self.dense is None else int(self.dense.shape[1])

    @property
    def feature_dim(self) -> int:
        """Width of the logical feature vector (one-hot part included)."""
        return (self.n_items if self.identity else 0) + self.dense_dim

    def to_pickle_object(self) -> Any:
        """The second object of `NAME.pkl`: dense matrix for small catalogues, else compact dict."""
        if self.n_items <= DENSE_ONE_HOT_MAX_ITEMS:
            parts = []
            if self.identity:
                parts.append(np.eye(self.n_items, dtype=np.float64))
            if self.dense is not None:
                parts.append(self.dense.astype(np.float64))
            if parts and not (self.identity and self.dense is not None):
                return parts[0]
        return {
            "format": FEATURES_FORMAT,
            "n_items": int(self.n_items),
            "identity": bool(self.identity),
            "dense": None if self.dense is None else self.dense.astype(np.float32),
            "columns": list(self.columns),
        }

    @classmethod
    def from_pickle_object(cls, obj: Any, source: str) -> "ItemFeatures":
        """Parses either on-disk form; raises `DataError` naming `source` and the field when
        malformed (a wrong shape or type, a non-numeric or non-finite feature)."""
        if isinstance(obj, np.ndarray):
            matrix = feature_matrix(obj, f"{source}: item features (2-D array)")
            n = matrix.shape[0]
            if matrix.shape[1] == n and np.array_equal(matrix, np.eye(n, dtype=matrix.dtype)):
                return cls(n_items=n, identity=True)
            return cls(
                n_items=n,
                identity=False,
                dense=matrix,
                columns=tuple(f"f{i}" for i in range(matrix.shape[1])),
            )
        if isinstance(obj, dict):
            where = f"{source}: item features"
            if obj.get("format") != FEATURES_FORMAT:
                raise DataError(
                    f"{where}: field 'format' is {obj.get('format')!r}, expected "
                    f"{FEATURES_FORMAT!r}"
                )
            n = obj.get("n_items")
            if not is_integer(n) or n <= 0:
                raise DataError(f"{where}: field 'n_items': expected a positive integer, got {n!r}")
            identity = obj.get("identity", True)
            if not isinstance(identity, (bool, np.bool_)):
                raise DataError(
                    f"{where}: field 'identity': expected True or False, got {identity!r}"
                )
            dense = obj.get("dense")
            if dense is not None:
                dense = feature_matrix(dense, f"{where}, field 'dense'")
                if dense.shape[0] != n:
                    raise DataError(
                        f"{where}, field 'dense': expected shape [{n}, d] (n_items "
                        f"rows), got {dense.shape}"
                    )
            elif not identity:
                raise DataError(
                    f"{where}: no features: 'identity' is False and 'dense' is "
                    "None; expected one of them"
                )
            columns = tuple(str(c) for c in obj.get("columns") or ())
            if dense is not None and len(columns) != dense.shape[1]:
                columns = tuple(f"f{i}" for i in range(dense.shape[1]))
            return cls(n_items=int(n), identity=bool(identity), dense=dense, columns=columns)
        raise DataError(
            f"{source}: item features: expected a 2-D array or a dict, got {type(obj).__name__}"
        )


def is_integer(value: Any) -> bool:
    """Whether `value` is a Python or numpy integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def feature_matrix(values: Any, where: str) -> np.ndarray:
    """`values` as a float32 `[rows, d]` matrix of finite numbers.

    Args:
      values: the array read from a pickle.
      where: the file and field, for the error.

    Raises:
      DataError: `where`, and what is wrong: not 2-D, no rows, not numbers (strings, objects),
        or a NaN or infinity (also one that float32 cannot hold), with its row and column.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected an array of numbers, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[0] == 0:
        raise DataError(f"{where}: expected a 2-D array [n_items, d], got shape {array.shape}")
    with np.errstate(over="ignore"):
        matrix = array.astype(np.float32)
    finite = np.isfinite(matrix)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise DataError(
            f"{where}: expected finite numbers, got {float(array[row, column])} "
            f"at row {row}, column {column}"
        )
    return matrix


@dataclasses.dataclass
class ClickDataset:
    """A processed dataset in memory.

    Attributes:
        name: dataset name (`NAME` of `NAME.pkl`).
        behavior: `data_behavior` of the original layout, one `[user_id, displays, clicks]`
            per user.
        item_features: the items' features.
        split: train, validation and test user ids.
    """

    name: str
    behavior: list
    item_features: ItemFeatures
    split: tuple[list, list, list]

    @property
    def n_items(self) -> int:
        return self.item_features.n_items

    def users(self, split: str) -> list:
        """User ids of split 'train', 'vali' or 'test'."""
        return list(self.split[SPLIT_NAMES.index(split)])

    def max_display(self) -> int:
        return max((len(d) for _, displays, _ in self.behavior for d in displays), default=1)

    def event_arrays(
        self, split: str | None = None, max_display: int | None = None
    ) -> "EventArrays":
        """The padded event arrays of one split's users (all users when `split` is None)."""
        users = None if split is None else self.users(split)
        return EventArrays.from_behavior(
            self.behavior, users, max_display or self.max_display(), self.n_items
        )


SPLIT_NAMES = ("train", "vali", "test")


def paths(data_folder: str, name: str) -> dict[str, str]:
    """File names of dataset `name` in `data_folder`; `DataError` for a name that is a path
    (`../x` would read and write beside the data folder, not in it)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or (os.altsep or "/") in name:
        raise DataError(
            f"--dataset={name!r}: expected a dataset name such as 'yelp' or 'mylogs', not a "
            "path: its files are DATA_FOLDER/NAME.pkl, ... (give the folder with --data_folder)"
        )
    base = os.path.join(data_folder, name)
    return {
        "pkl": base + ".pkl",
        "split": base + "-split.pkl",
        "stats": base + "-stats.json",
        "truth": base + "-truth.npz",
        "events": base + "-events",
        "users": base + "-users.csv",
        "items": base + "-items.csv",
    }


def _hash_rows(digest, array: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Adds `array` (its dtype, shape and values; where `mask` is False, -1 instead: the
    value of padding is no data) to `digest`, a million rows at a time, so a memory-mapped
    log is hashed without a copy of it in memory."""
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    for start in range(0, max(len(array), 1), 1 << 20):
        rows = np.asarray(array[start : start + (1 << 20)])
        if mask is not None:
            rows = np.where(mask[start : start + (1 << 20)], rows, -1).astype(array.dtype)
        digest.update(np.ascontiguousarray(rows).reshape(-1).view(np.uint8))


@dataclasses.dataclass
class SplitData:
    """What a trainer reads: the item features and one `EventArrays` per split."""

    name: str
    item_features: ItemFeatures
    splits: dict[str, "EventArrays"]

    @property
    def n_items(self) -> int:
        return self.item_features.n_items

    def fingerprint(self) -> str:
        """The sha256 of what a model learns from: the catalogue, the dense item features and
        every split's users, display sets and clicks (a run folder keeps it, so a rerun on
        data prepared again differently is refused instead of reusing the run)."""
        digest = hashlib.sha256()
        features = self.item_features
        digest.update(json.dumps([features.n_items, features.identity, features.columns]).encode())
        if features.dense is not None:
            _hash_rows(digest, np.asarray(features.dense, np.float32))
        for name in sorted(self.splits):
            digest.update(name.encode())
            events = self.splits[name]
            for array in (events.user_ids, events.event_offsets, events.clicked_pos):
                _hash_rows(digest, array)
            _hash_rows(digest, events.display, events.display_mask)
        return digest.hexdigest()

    @classmethod
    def from_dataset(cls, dataset: ClickDataset, resplit_seed: int | None = None) -> "SplitData":
        """The splits of an in-memory dataset (a fresh 50/25/25 user split with
        `resplit_seed` when given)."""
        split = dataset.split
        if resplit_seed is not None:
            split = resplit_users([entry[0] for entry in dataset.behavior], resplit_seed)
        max_display = dataset.max_display()
        return cls(
            dataset.name,
            dataset.item_features,
            {
                name: EventArrays.from_behavior(
                    dataset.behavior, users, max_display, dataset.n_items
                )
                for name, users in zip(SPLIT_NAMES, split)
            },
        )

    def with_training_share(self, share: float, seed: int) -> "SplitData":
        """These splits with the training users cut to a random `share` of them (at least
        one), drawn with `seed` without replacement and kept in their order; validation and
        test unchanged. No user appears twice, so out-of-fold item statistics over the
        training users stay out of fold. `share` 1 returns the splits as they are."""
        if not 0.0 < share <= 1.0:
            raise ValueError(f"train_share={share}: expected a number in (0, 1]")
        train = self.splits["train"]
        if share == 1.0 or train.n_users == 0:
            return self
        keep = max(1, round(share * train.n_users))
        rng = np.random.default_rng([seed, _SHARE_STREAM])
        rows = np.sort(rng.choice(train.n_users, size=keep, replace=False))
        return dataclasses.replace(self, splits={**self.splits, "train": train.subset(rows)})

    def with_recent_events(self, max_events: int) -> "SplitData":
        """These splits with each user cut to her last `max_events` events (0: all), the
        events a user-model run with `max_events` trains, validates and tests on."""
        if not max_events:
            return self
        splits = {name: events.recent_events(max_events) for name, events in self.splits.items()}
        return dataclasses.replace(self, splits=splits)


# Seeds `with_training_share`'s draw apart from a run's other uses of its seed.
_SHARE_STREAM = 0x5A1E


# A run folder's record of the data it was trained on: {"data": ..., "sha256": fingerprint}.
DATA_RECORD = "data.json"


def load_run_data(config: dict, run_dir: str | None = None) -> SplitData:
    """The logs of a user-model run as it was trained (its `config.json` as a dict): the
    dataset's split, or the one `resplit` drew with its seed, and with `train_share` below 1
    only the share of the training users it was fitted to. With the run folder `run_dir`,
    logs prepared again differently since the run (its `DATA_RECORD`) are a `DataError`."""
    data = load_split_data(
        config["data_folder"],
        config["dataset"],
        resplit_seed=config["seed"] if config.get("resplit") else None,
    )
    record = os.path.join(run_dir, DATA_RECORD) if run_dir else ""
    if record and os.path.exists(record):
        with open(record) as f:
            trained_on = json.load(f).get("sha256")
        if trained_on != data.fingerprint():
            raise DataError(
                f"{run_dir}: the user model was trained on other data than dataset "
                f"{config['dataset']!r} in {config['data_folder']} now (prepared again since); "
                "train it again on these logs (another folder, or delete this one)"
            )
    return data.with_training_share(float(config.get("train_share", 1.0)), config["seed"])


def require_every_split(users: Sequence[int], where: str) -> None:
    """Refuses a user split with an empty part: training fits the model, the validation users
    choose its checkpoints (and stop it early) and the test users score it.

    Args:
      users: the number of train, validation and test users.
      where: what the split belongs to, for the error (a file, a dataset).

    Raises:
      DataError: naming `where` and the three counts.
    """
    if min(users) > 0:
        return
    train, vali, test = users
    empty = [name for name, n in zip(("train", "validation", "test"), users) if n == 0]
    raise DataError(
        f"{where}: the user split has {train} train, {vali} validation and {test} test users: "
        f"no {' or '.join(empty)} user; expected at least one user in each part (more users, "
        "or a split column that puts some in each)"
    )


def resplit_users(users: list, seed: int) -> tuple[list, list, list]:
    """A fresh 50/25/25 split of `users` drawn with `seed`."""
    order = np.random.default_rng(seed).permutation(len(users))
    shuffled = [users[i] for i in order]
    n_train, n_vali = len(users) // 2, len(users) // 4
    return (shuffled[:n_train], shuffled[n_train : n_train + n_vali], shuffled[n_train + n_vali :])


# What `NAME-events/` records of the pickles it was built from (`pickle_sources`).
SOURCES_FILE = "sources.json"


def pickle_sources(data_folder: str, name: str) -> dict | None:
    """The size and mtime_ns of `NAME.pkl` and `NAME-split.pkl`, or None when one is missing
    (events written without pickles, such as the benchmarks' large synthetic logs)."""
    p = paths(data_folder, name)
    sources = {}
    for key in ("pkl", "split"):
        try:
            stat = os.stat(p[key])
        except FileNotFoundError:
            return None
        sources[os.path.basename(p[key])] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return sources


def save_event_splits(data_folder: str, data: SplitData, folder: str | None = None) -> None:
    """Writes the memory-mappable form `NAME-events/`: `item_features.pkl`, one folder of
    `.npy` arrays per split (`train/`, `vali/`, `test/`; see `EventArrays.save`) and, when the
    dataset's pickles exist, `sources.json` (`pickle_sources`: write the pickles first).

    Args:
      data_folder: the data folder.
      data: the splits.
      folder: where to write instead of `NAME-events/` (a temporary folder to rename).
    """
    folder = folder or paths(data_folder, data.name)["events"]
    for split_name, events in data.splits.items():
        events.save(os.path.join(folder, split_name))
    safe_io.dump_pickles(
        os.path.join(folder, "item_features.pkl"), data.item_features.to_pickle_object()
    )
    sources = pickle_sources(data_folder, data.name)
    source_path = os.path.join(folder, SOURCES_FILE)
    if sources is not None:
        safe_io.dump_json(source_path, sources)
    elif os.path.exists(source_path):
        os.remove(source_path)


def events_are_current(data_folder: str, name: str) -> bool:
    """Whether `NAME-events/` may be read: it records the pickles as they are now, or there
    are no pickles to compare it with."""
    sources = pickle_sources(data_folder, name)
    if sources is None:
        return True
    path = os.path.join(paths(data_folder, name)["events"], SOURCES_FILE)
    try:
        with open(path) as f:
            return json.load(f) == sources
    except (OSError, ValueError):
        return False  # written before sources.json existed, or damaged


def rebuild_event_splits(data_folder: str, name: str) -> None:
    """Rebuilds `NAME-events/` from `NAME.pkl` and `NAME-split.pkl`: written into a temporary
    folder beside it, then swapped in, so a reader never sees half a folder. Another process
    that swapped in its own rebuild first wins.

    Raises:
      DataError: the pickles are bad (`load_dataset`); the old folder is left as it was.
    """
    target = paths(data_folder, name)["events"]
    data = SplitData.from_dataset(load_dataset(data_folder, name))
    unique = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    building = os.path.join(data_folder, f".{name}-events.{unique}.tmp")
    old = os.path.join(data_folder, f".{name}-events.{unique}.old")
    try:
        os.mkdir(building)
        save_event_splits(data_folder, data, folder=building)
        try:
            os.rename(target, old)
        except FileNotFoundError:
            pass
        try:
            os.rename(building, target)
        except OSError:
            if not os.path.isdir(target):
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def load_split_data(
    data_folder: str, name: str, resplit_seed: int | None = None, mmap: bool = True
) -> SplitData:
    """The splits of dataset `name`: from the memory-mapped `NAME-events/` when present (and
    no resplit is asked for), else from `NAME.pkl` and `NAME-split.pkl`. An events folder
    built from other pickles than those there now (`events_are_current`) is rebuilt first."""
    folder = paths(data_folder, name)["events"]
    if resplit_seed is None and os.path.isdir(folder):
        if not events_are_current(data_folder, name):
            try:
                rebuild_event_splits(data_folder, name)
            except PermissionError:  # a read-only data folder: the pickles, read as they are
                return SplitData.from_dataset(load_dataset(data_folder, name), resplit_seed)
        features_path = os.path.join(folder, "item_features.pkl")
        (features,) = safe_io.load_pickles(features_path, 1)
        item_features = ItemFeatures.from_pickle_object(features, features_path)
        splits = {
            split: EventArrays.load(os.path.join(folder, split), mmap=mmap) for split in SPLIT_NAMES
        }
        for split, events in splits.items():
            if events.n_items != item_features.n_items:
                raise DataError(
                    f"{features_path}: item features of {item_features.n_items} items, "
                    f"expected {events.n_items} (n_items of {os.path.join(folder, split)}/"
                    "meta.json)"
                )
        # The lists are the split folders' user_ids.npy.
        validate_split([events.user_ids.tolist() for events in splits.values()], folder)
        return SplitData(name, item_features, splits)
    return SplitData.from_dataset(load_dataset(data_folder, name), resplit_seed)


def save_dataset(data_folder: str, dataset: ClickDataset, stats: dict | None = None) -> None:
    """Writes `NAME.pkl`, `NAME-split.pkl` (and `NAME-stats.json`) atomically."""
    p = paths(data_folder, dataset.name)
    safe_io.dump_pickles(p["pkl"], dataset.behavior, dataset.item_features.to_pickle_object())
    safe_io.dump_pickles(p["split"], *[list(s) for s in dataset.split])
    if stats is not None:
        safe_io.dump_json(p["stats"], stats)


def load_dataset(data_folder: str, name: str) -> ClickDataset:
    """Reads and validates dataset `name` from `data_folder` (restricted unpickling).

    Raises:
      DataError: naming the file and the field, entry or user that is malformed
        (`ItemFeatures.from_pickle_object`, `validate_behavior`, `validate_split`).
    """
    p = paths(data_folder, name)
    behavior, features = safe_io.load_pickles(p["pkl"], 2)
    item_features = ItemFeatures.from_pickle_object(features, p["pkl"])
    validate_behavior(behavior, item_features.n_items, p["pkl"])
    split = validate_split(
        safe_io.load_pickles(p["split"], 3),
        p["split"],
        known=({entry[0] for entry in behavior}, p["pkl"]),
    )
    return ClickDataset(name=name, behavior=behavior, item_features=item_features, split=split)


def validate_split(
    lists: Sequence, source: str, known: tuple[set, str] | None = None
) -> tuple[list, list, list]:
    """Checks a user split: three lists (train, vali, test) of user ids, each user in one.

    Args:
      lists: the train, validation and test user ids, as read.
      source: where they come from, for the error.
      known: (the dataset's user ids, its file name): every user must be one of them.

    Returns:
      The three lists.

    Raises:
      DataError: naming `source`, the list and entry: not a list of integers, a user the data
        lacks, or a user twice (a test user also in training would be scored on her own
        training events).
    """
    seen: dict = {}
    for split_name, users in zip(SPLIT_NAMES, lists):
        if not isinstance(users, (list, tuple, np.ndarray)):
            raise DataError(
                f"{source}: {split_name} list: expected a list of user ids, got "
                f"{type(users).__name__}"
            )
        for position, user in enumerate(users):
            where = f"{source}: {split_name} list, entry {position}"
            if not is_integer(user):
                raise DataError(f"{where}: expected an integer user id, got {user!r}")
            if known is not None and user not in known[0]:
                raise DataError(f"{where}: user {user!r} is not in {known[1]}")
            if user in seen:
                raise DataError(
                    f"{where}: user {user!r} is already in the {seen[user]}; "
                    "expected each user in one split, once"
                )
            seen[user] = f"{split_name} list (entry {position})"
    return tuple(list(users) for users in lists)


def validate_behavior(behavior: Any, n_items: int, source: str) -> None:
    """Checks the `data_behavior` structure and types.

    Raises:
      DataError: naming `source`, the entry (and user, step) and what was expected.
    """
    if not isinstance(behavior, list):
        raise DataError(f"{source}: data_behavior: expected a list, got {type(behavior).__name__}")
    entry_of_user: dict = {}
    for u, entry in enumerate(behavior):
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise DataError(f"{source}: data_behavior[{u}]: expected [user_id, displays, clicks]")
        user, displays, clicks = entry
        where = f"{source}: data_behavior[{u}]"
        if not is_integer(user) or user < 0:
            raise DataError(f"{where}: user id: expected a non-negative integer, got {user!r}")
        if user in entry_of_user:
            raise DataError(
                f"{where}: user {user} already has entry {entry_of_user[user]}; "
                "expected one entry per user"
            )
        entry_of_user[user] = u
        where = f"{where} (user {user})"
        for field, value in (("displays", displays), ("clicks", clicks)):
            if not isinstance(value, (list, tuple, np.ndarray)):
                raise DataError(f"{where}: {field}: expected a list, got {type(value).__name__}")
        if len(displays) != len(clicks):
            raise DataError(f"{where}: {len(displays)} display sets but {len(clicks)} clicks")
        for t, (display, click) in enumerate(zip(displays, clicks)):
            step = f"{where}, step {t}"
            if not isinstance(display, (list, tuple, np.ndarray)) or len(display) == 0:
                raise DataError(
                    f"{step}: display set: expected a non-empty list of item ids, got {display!r}"
                )
            for item in display:
                if not is_integer(item) or not 0 <= item < n_items:
                    raise DataError(
                        f"{step}: display set: expected item ids in 0..{n_items - 1}, got {item!r}"
                    )
            if not is_integer(click) or (click != NO_CLICK and click not in display):
                raise DataError(
                    f"{step}: click: expected an item of the display set "
                    f"{list(display)!r} or {NO_CLICK}, got {click!r}"
                )


def earlier_clicks(clicked_item: np.ndarray, event_offsets: np.ndarray, depth: int) -> np.ndarray:
    """`[E, depth]` each event's user's last `depth` clicked items before it, most recent
    first, -1 where she has fewer.

    Args:
      clicked_item: `[E]` clicked item or -1, events grouped by user in time order.
      event_offsets: `[U + 1]` user boundaries.
      depth: how many earlier clicks to keep.
    """
    clicked = clicked_item >= 0
    click_items = np.concatenate([clicked_item[clicked], [-1]])  # -1: never a valid index
    count = np.concatenate([[0], np.cumsum(clicked)])
    before = count[:-1]  # clicks of all users before each event
    first = np.repeat(count[event_offsets[:-1]], np.diff(event_offsets))  # user's first click
    lag = before[:, None] - 1 - np.arange(depth)[None, :]
    return np.where(lag >= first[:, None], click_items[np.maximum(lag, 0)], -1)


@dataclasses.dataclass
class EventArrays:
    """Flat, padded events of a set of users (one row per display set).

    Attributes:
        user_ids: `[U]` user ids, in order.
        event_offsets: `[U + 1]`; user i's events are rows `event_offsets[i]:event_offsets[i+1]`.
        display: `[E, max_display]` int32 item ids, padded with 0.
        display_mask: `[E, max_display]` bool, True on real items.
        clicked_pos: `[E]` int32 position of the click in `display`, or -1 for no click.
        n_items: catalogue size.
    """

    user_ids: np.ndarray
    event_offsets: np.ndarray
    display: np.ndarray
    display_mask: np.ndarray
    clicked_pos: np.ndarray
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_events(self) -> int:
        return len(self.clicked_pos)

    @property
    def max_display(self) -> int:
        return self.display.shape[1]

    @property
    def events_per_user(self) -> np.ndarray:
        return np.diff(self.event_offsets)

    @property
    def clicked_item(self) -> np.ndarray:
        """`[E]` clicked item id, or -1."""
        pos = np.maximum(self.clicked_pos, 0)
        items = self.display[np.arange(self.n_events), pos]
        return np.where(self.clicked_pos >= 0, items, NO_CLICK).astype(np.int32)

    ARRAY_FIELDS = ("user_ids", "event_offsets", "display", "display_mask", "clicked_pos")
    # Field -> (numpy dtype kinds it may have, number of dimensions).
    ARRAY_TYPES = {
        "user_ids": ("iu", 1),
        "event_offsets": ("iu", 1),
        "display": ("iu", 2),
        "display_mask": ("b", 2),
        "clicked_pos": ("iu", 1),
    }

    def save(self, folder: str) -> None:
        """Writes the arrays as `.npy` files in `folder` (each atomically), readable in pieces
        through `load(folder, mmap=True)`."""
        os.makedirs(folder, exist_ok=True)
        for field in self.ARRAY_FIELDS:
            with safe_io.atomic_open(os.path.join(folder, field + ".npy")) as f:
                np.save(f, np.asarray(getattr(self, field)), allow_pickle=False)
        safe_io.dump_json(
            os.path.join(folder, "meta.json"),
            {
                "n_items": int(self.n_items),
                "n_users": self.n_users,
                "n_events": self.n_events,
                "max_display": self.max_display,
            },
        )

    @classmethod
    def load(cls, folder: str, mmap: bool = True) -> "EventArrays":
        """Reads arrays written by `save`; with `mmap` they stay on disk and only the rows a
        batch touches are read, so memory is bounded by the batch, not by the data."""
        meta_path = os.path.join(folder, "meta.json")
        if not os.path.exists(meta_path):
            raise DataError(f"{folder}: no meta.json: not an event-array folder")
        try:
            with open(meta_path) as f:
                n_items = json.load(f)["n_items"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise DataError(f"{meta_path}: expected a JSON object with 'n_items': {e}") from None
        if not is_integer(n_items) or n_items <= 0:
            raise DataError(
                f"{meta_path}: field 'n_items': expected a positive integer, got {n_items!r}"
            )
        arrays = {}
        for field in cls.ARRAY_FIELDS:
            path = os.path.join(folder, field + ".npy")
            try:
                arrays[field] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataError(f"{path}: cannot read event array '{field}': {e}") from None
        events = cls(n_items=n_items, **arrays)
        events.validate(folder)
        return events

    # Rows checked at a time by `validate`, so that checking a memory-mapped folder needs
    # memory for one block, not for the data.
    VALIDATE_BLOCK = 1 << 20

    def validate(self, folder: str) -> None:
        """Checks shapes, types and ranges: every displayed id in 0..n_items-1, every click
        on a displayed item (or -1), offsets from 0 that never decrease.

        Raises:
          DataError: naming `folder`'s array file and the first bad row.
        """

        def fail(field: str, what: str) -> NoReturn:
            raise DataError(f"{os.path.join(folder, field + '.npy')}: {what}")

        for field, (kinds, ndim) in self.ARRAY_TYPES.items():
            array = getattr(self, field)
            if array.dtype.kind not in kinds or array.ndim != ndim:
                fail(
                    field,
                    f"a {array.ndim}-D array of {array.dtype}, expected a {ndim}-D "
                    f"array of {'booleans' if kinds == 'b' else 'integers'}",
                )
        offsets = np.asarray(self.event_offsets)
        if len(offsets) != self.n_users + 1 or offsets[0] != 0 or (np.diff(offsets) < 0).any():
            fail("event_offsets", f"expected {self.n_users + 1} offsets (users + 1) rising from 0")
        n_events = int(offsets[-1])
        for field in ("display", "display_mask", "clicked_pos"):
            if len(getattr(self, field)) != n_events:
                fail(
                    field,
                    f"{len(getattr(self, field))} rows, expected {n_events} (event_offsets[-1])",
                )
        if self.display_mask.shape != self.display.shape:
            fail(
                "display_mask",
                f"shape {self.display_mask.shape}, expected "
                f"{self.display.shape} (that of display.npy)",
            )
        for start in range(0, n_events, self.VALIDATE_BLOCK):
            rows = slice(start, start + self.VALIDATE_BLOCK)
            display, mask = np.asarray(self.display[rows]), np.asarray(self.display_mask[rows])
            bad = mask & ((display < 0) | (display >= self.n_items))
            if bad.any():
                row, column = np.argwhere(bad)[0]
                fail(
                    "display",
                    f"row {start + row}: item id {display[row, column]}, expected "
                    f"0..{self.n_items - 1} (n_items of meta.json)",
                )
            clicked = np.asarray(self.clicked_pos[rows]).astype(np.int64)
            on_item = (clicked >= 0) & (clicked < self.max_display)
            on_item[on_item] = mask[np.flatnonzero(on_item), clicked[on_item]]
            bad = ~on_item & (clicked != NO_CLICK)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                fail(
                    "clicked_pos",
                    f"row {start + row}: {clicked[row]}, expected the position "
                    f"of a displayed item or {NO_CLICK}",
                )

    @classmethod
    def from_behavior(
        cls, behavior: list, users: Sequence | None, max_display: int, n_items: int
    ) -> "EventArrays":
        """Builds the arrays of `users` (all, in file order, when None) from `data_behavior`."""
        by_user = {entry[0]: entry for entry in behavior}
        order = [entry[0] for entry in behavior] if users is None else list(users)
        sizes, flat_items, clicks, counts = [], [], [], []
        for user in order:
            _, displays, user_clicks = by_user[user]
            counts.append(len(displays))
            for display in displays:
                sizes.append(len(display))
                flat_items.extend(display)
            clicks.extend(user_clicks)
        sizes = np.asarray(sizes, dtype=np.int64)
        if len(sizes) and sizes.max() > max_display:
            raise DataError(f"display set of {sizes.max()} items exceeds max_display={max_display}")
        n_events = len(sizes)
        mask = np.arange(max_display)[None, :] < sizes[:, None]
        display = np.zeros((n_events, max_display), dtype=np.int32)
        display[mask] = np.asarray(flat_items, dtype=np.int32)
        clicks = np.asarray(clicks, dtype=np.int64)
        hit = (display == clicks[:, None]) & mask
        clicked_pos = np.where(hit.any(axis=1), hit.argmax(axis=1), NO_CLICK).astype(np.int32)
        return cls(
            user_ids=np.asarray(order, dtype=np.int64),  # int64 even with no users
            event_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            display=display,
            display_mask=mask,
            clicked_pos=clicked_pos,
            n_items=n_items,
        )

    def user_batch(self, user_rows: np.ndarray, max_events: int | None = None) -> dict:
        """Pads the events of users `user_rows` (row indices) into `[B, T, ...]` numpy arrays.

        Returns a dict with `display [B, T, D]`, `display_mask [B, T, D]`, `clicked_pos [B, T]`
        and `event_mask [B, T]`; T is the longest of these users' sequences (or `max_events`).
        Users with more than `max_events` events keep their last `max_events`.
        """
        user_rows = np.asarray(user_rows, dtype=np.int64)
        starts = self.event_offsets[user_rows]
        lengths = self.event_offsets[user_rows + 1] - starts
        t_max = int(lengths.max()) if len(lengths) else 1
        if max_events is not None:
            starts = starts + np.maximum(lengths - max_events, 0)
            lengths = np.minimum(lengths, max_events)
            t_max = max_events
        t_max = max(t_max, 1)
        steps = np.arange(t_max)[None, :]
        event_mask = steps < lengths[:, None]
        rows = np.where(event_mask, starts[:, None] + steps, 0)
        return {
            "display": np.where(event_mask[..., None], self.display[rows], 0),
            "display_mask": self.display_mask[rows] & event_mask[..., None],
            "clicked_pos": np.where(event_mask, self.clicked_pos[rows], NO_CLICK).astype(np.int32),
            "event_mask": event_mask,
        }

    def subset(self, user_rows: np.ndarray) -> "EventArrays":
        """A contiguous copy holding only users `user_rows` (in that order)."""
        user_rows = np.asarray(user_rows, dtype=np.int64)
        return self._copy(user_rows, *self._event_spans(user_rows))

    def recent_events(self, max_events: int) -> "EventArrays":
        """A contiguous copy in which each user keeps her last `max_events` events, the
        events `flat_batch(rows, max_events)` holds (0: all, `self` itself)."""
        if not max_events:
            return self
        user_rows = np.arange(self.n_users, dtype=np.int64)
        return self._copy(user_rows, *self._event_spans(user_rows, max_events))

    def _event_spans(
        self, user_rows: np.ndarray, max_events: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`[B]` first event row and `[B]` event count of users `user_rows`: all their
        events, or their last `max_events` when given."""
        starts = self.event_offsets[user_rows]
        lengths = self.event_offsets[user_rows + 1] - starts
        if max_events:
            starts = starts + np.maximum(lengths - max_events, 0)
            lengths = np.minimum(lengths, max_events)
        return starts, lengths

    def _copy(
        self, user_rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray
    ) -> "EventArrays":
        """A contiguous copy of users `user_rows`, each with `lengths` events from `starts`."""
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = np.repeat(starts, lengths) + (np.arange(int(lengths.sum())) - first)
        return EventArrays(
            user_ids=np.asarray(self.user_ids)[user_rows],
            event_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            display=self.display[rows],
            display_mask=self.display_mask[rows],
            clicked_pos=self.clicked_pos[rows],
            n_items=self.n_items,
        )

    def flat_batch(self, user_rows: np.ndarray, max_events: int | None = None) -> dict:
        """The events of users `user_rows` as a flat batch with no padding over time.

        Users with more than `max_events` events keep their last `max_events`. Returns numpy
        arrays, N events of B users with at most C clicks each:
          display `[N, D]`, display_mask `[N, D]`, clicked_pos `[N]`, event_mask `[N]` (all
          True here; padding added by stacking is False), event_user `[N]` (row of the event's
          user in the batch), clicks_before `[N]` (the user's clicks before this event, within
          the kept events), click_items `[B, C]` (each user's clicked items in order, 0-padded),
          click_mask `[B, C]` and user_row `[B]` (the users' rows in this split).
        """
        user_rows = np.asarray(user_rows, dtype=np.int64)
        starts, lengths = self._event_spans(user_rows, max_events)
        n = int(lengths.sum())
        event_user = np.repeat(np.arange(len(user_rows), dtype=np.int32), lengths)
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)  # batch index of user's 1st
        rows = np.repeat(starts, lengths) + (np.arange(n) - first)
        clicked_pos = self.clicked_pos[rows]
        clicked = clicked_pos >= 0
        running = np.cumsum(clicked) - clicked  # clicks before, counted over the whole batch
        clicks_before = (running - running[first] if n else running).astype(np.int32)
        clicks_per_user = np.bincount(event_user, weights=clicked, minlength=len(user_rows))
        c = max(int(clicks_per_user.max()) if len(user_rows) else 0, 1)
        click_items = np.zeros((len(user_rows), c), dtype=np.int32)
        click_mask = np.zeros((len(user_rows), c), dtype=bool)
        users, slots = event_user[clicked], clicks_before[clicked]
        click_items[users, slots] = self.display[rows[clicked], clicked_pos[clicked]]
        click_mask[users, slots] = True
        return {
            "display": self.display[rows],
            "display_mask": self.display_mask[rows],
            "clicked_pos": clicked_pos.astype(np.int32),
            "event_mask": np.ones(n, dtype=bool),
            "event_user": event_user,
            "clicks_before": clicks_before,
            "click_items": click_items,
            "click_mask": click_mask,
            "user_row": user_rows.astype(np.int32),
        }
