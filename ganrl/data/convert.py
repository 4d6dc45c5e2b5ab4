"""From click-log rows to a `ClickDataset`: the shared core of every reader.

A row says that `item` was displayed to `user` at `time` and whether it was clicked. Rows with
the same (user, time) form one display set (one page view). The conversion, vectorised:

1. duplicate rows are dropped; where an item appears twice in one display set, its clicked row
   is kept (the original preprocessing);
2. a display set with one clicked row is an event with that click; with none, a no-click event
   (clicked id -1); with two or more, an error naming the rows (`DataError`);
3. each display set is shuffled with the seed: in the released files the clicked row is always
   the last one of its set, so row order must carry no information downstream;
4. a user's events are ordered by time; users by id.

Nothing is computed from raw row counts (the released files repeat clicked rows).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import os

import numpy as np
import pandas as pd

from ganrl.data import safe_io
from ganrl.data.dataset import (
    NO_CLICK,
    ClickDataset,
    EventArrays,
    ItemFeatures,
    SplitData,
    resplit_users,
)
from ganrl.data.safe_io import DataError
from ganrl.data.stats import dataset_statistics

SPLIT_CODES = {0: "train", 1: "vali", 2: "test"}


@dataclasses.dataclass(frozen=True)
class IdMap:
    """The input's own ids of re-indexed users or items: dense id `i` was `ids[i]`.

    Attributes:
      column: the input column the ids come from (the header of `NAME-users.csv` or
        `NAME-items.csv` beside the dense id's).
      ids: `[n]` the original id of each dense id, in dense id order.
    """

    column: str
    ids: np.ndarray

    def header(self, kind: str) -> list[str]:
        """The CSV header for ids of `kind` ('user' or 'item'): `KIND_id` (the dense id) and
        the input's column name (`kind` when that name is `KIND_id` itself)."""
        dense = f"{kind}_id"
        return [dense, kind if self.column == dense else self.column]

    @classmethod
    def load(cls, path: str) -> "IdMap":
        """Reads a `NAME-users.csv` or `NAME-items.csv` (`save`); the original ids are read as
        strings. A line whose dense id is not its position is an error naming it."""
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or len(rows[0]) != 2:
            raise DataError(f"{path}: line 1: expected the header 'KIND_id,COLUMN'")
        ids = []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != 2 or row[0] != str(line - 2):
                raise DataError(
                    f"{path}: line {line}: expected '{line - 2},ORIGINAL_ID' (dense ids in "
                    f"order), got {','.join(row)!r}"
                )
            ids.append(row[1])
        return cls(rows[0][1], np.asarray(ids, dtype=object))

    def dense(self, original) -> np.ndarray:
        """The dense ids of `original` ids (any shape; compared as strings), for
        `ganrl.policy.export.recommend`; an unknown id is an error naming it."""
        index = {str(v): i for i, v in enumerate(self.ids.tolist())}
        flat = np.asarray(original, dtype=object).ravel()
        unknown = [v for v in flat if str(v) not in index]
        if unknown:
            raise KeyError(f"{self.column}: {unknown[0]!r} is not an id of this dataset")
        out = np.fromiter((index[str(v)] for v in flat), np.int64, len(flat))
        return out.reshape(np.shape(original))

    def original(self, dense) -> np.ndarray:
        """The original ids of dense ids `dense` (any shape; -1 padding is an error)."""
        dense = np.asarray(dense)
        if dense.size and (dense.min() < 0 or dense.max() >= len(self.ids)):
            raise KeyError(
                f"dense ids must be 0..{len(self.ids) - 1}, got {dense.min()}..{dense.max()}"
            )
        return self.ids[dense]

    def save(self, path: str, kind: str) -> None:
        """Writes `path` atomically: the `header(kind)` line, then one `dense id,original id`
        line per dense id, in dense id order."""
        with safe_io.atomic_open(path, "w") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(self.header(kind))
            writer.writerows(zip(range(len(self.ids)), self.ids.tolist()))


@dataclasses.dataclass
class Converted:
    """A converted dataset, its event arrays (all users, in `behavior` order) and statistics;
    with the readers that re-index ids, the original ids of the dense user and item ids."""

    dataset: ClickDataset
    events: EventArrays
    user_rows: dict[str, np.ndarray]  # rows of `events` per split
    stats: dict
    user_map: IdMap | None = None
    item_map: IdMap | None = None
    source: str = ""  # the input file, for errors

    def split_data(self) -> SplitData:
        """Per-split event arrays (each contiguous) for the memory-mapped form."""
        return SplitData(
            self.dataset.name,
            self.dataset.item_features,
            {name: self.events.subset(rows) for name, rows in self.user_rows.items()},
        )


def read_table(path: str, sep: str, header: int | None = 0) -> pd.DataFrame:
    """Reads a delimited file as strings; `DataError` for a missing or empty file.

    Args:
      path: the file.
      sep: the field separator.
      header: 0 when the first line names the columns, None when there is no header.

    Returns:
      The rows as strings, blank lines dropped; the index keeps each row's place in the file
      (`line_numbers`).
    """
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, expected a file")
    refuse_nul_bytes(path)
    try:
        frame = pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, header=header, skip_blank_lines=False
        )
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: empty file: expected "
            + ("a header and data rows" if header == 0 else "data rows")
        ) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: {undecodable_line(path) or e}") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: cannot parse: {e}") from None
    if header == 0:
        refuse_duplicate_header(path, sep)
    blank = (frame.isna() | (frame == "")).all(axis=1)
    if blank.any():
        frame = frame[~blank.to_numpy()]
    if frame.empty:
        raise DataError(f"{path}: no data rows" + (" after the header" if header == 0 else ""))
    # What `short_row` reads back when an empty field is found (pandas pads a short row with
    # empty fields, so the frame alone cannot tell a short row from an empty field).
    frame.attrs["read_table"] = (path, sep, header == 0)
    return frame


def refuse_duplicate_header(path: str, sep: str) -> None:
    """`DataError` when two columns of the header line have one name (pandas would rename the
    second `NAME.1`, and a mapping to NAME would read the first silently)."""
    with open(path, newline="", encoding="utf-8") as f:
        names = next(csv.reader(f, delimiter=sep), [])
    seen = set()
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(
                f"{path}: line 1: column {name!r} is named twice (again as field {position}); "
                "expected distinct column names"
            )
        seen.add(name)


def short_row(frame: pd.DataFrame, position: int) -> str | None:
    """When row `position` of a `read_table` frame has fewer fields than the header, what
    the error should say ("line 3 has 2 fields, expected 4: u, t, i, c"); else None. Reads
    the one line again, so it is for error paths only."""
    if "read_table" not in frame.attrs:
        return None
    path, sep, has_header = frame.attrs["read_table"]
    line = int(frame.index[position]) + int(has_header) + 1
    with open(path, newline="", encoding="utf-8") as f:
        row = next(csv.reader(itertools.islice(f, line - 1, line), delimiter=sep), [])
    width = len(frame.columns)
    if len(row) >= width:
        return None
    names = ": " + ", ".join(map(str, frame.columns)) if has_header else ""
    return f"{path}: line {line} has {len(row)} fields, expected {width}{names}"


def undecodable_line(path: str) -> str | None:
    """Where `path` stops being UTF-8 ("line 3, byte 12: 0xfc is not UTF-8; save the file as
    UTF-8"), or None when every line decodes."""
    with open(path, "rb") as f:
        for line, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return (
                    f"line {line}, byte {e.start + 1}: 0x{raw[e.start]:02x} is not UTF-8; "
                    "expected a UTF-8 text file (save it as UTF-8)"
                )
    return None


def refuse_nul_bytes(path: str, chunk_bytes: int = 1 << 24) -> None:
    """Raises `DataError` naming the first line of `path` that holds a NUL byte.

    The CSV parser would keep a NUL inside a field it never converts (such as the released
    format's unused `SessionId`), so a corrupted line would pass unnoticed. Reads the file in
    chunks: memory stays bounded whatever its size.
    """
    newlines = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            nul = chunk.find(b"\0")
            if nul >= 0:
                line = newlines + chunk.count(b"\n", 0, nul) + 1
                raise DataError(f"{path}: line {line}: holds a NUL byte; expected text")
            newlines += chunk.count(b"\n")


def line_numbers(frame: pd.DataFrame, header_lines: int = 1) -> np.ndarray:
    """`[R]` the line number in its file of each row of a `read_table` frame."""
    return frame.index.to_numpy() + header_lines + 1


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Raises `DataError` naming the first missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column {missing[0]!r}: expected columns "
            f"{columns}, found {list(frame.columns)}"
        )


# Integers beyond this magnitude are not all exact in float64 (a column with one decimal or
# exponent in it is parsed as floats), and none beyond int64 fits the arrays.
EXACT_INTEGER_BOUND = 2**53


def exact_integers(values: pd.Series) -> np.ndarray:
    """`[R]` which entries of a `pd.to_numeric` result are exact integers that fit int64:
    whole, finite and, in a float column, at most `EXACT_INTEGER_BOUND` in magnitude."""
    if pd.api.types.is_signed_integer_dtype(values.dtype):
        return np.ones(len(values), dtype=bool)
    if pd.api.types.is_unsigned_integer_dtype(values.dtype):
        return values.to_numpy() <= np.iinfo(np.int64).max
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(numbers)
            & (numbers == np.floor(numbers))
            & (np.abs(numbers) <= EXACT_INTEGER_BOUND)
        )


def _integer_expected(value: float, minimum: int | None) -> str:
    """What an integer field should have held instead of `value` (words for the error)."""
    if minimum is not None and value < minimum:
        return "a non-negative integer" if minimum == 0 else f"an integer of at least {minimum}"
    if np.isinf(value) or (value == np.floor(value)):  # inf, or too large to be exact
        return "a finite integer of magnitude at most 2^53"
    return "an integer"


def integer_column(
    frame: pd.DataFrame, column: str, source: str, header_lines: int = 1, minimum: int | None = None
) -> np.ndarray:
    """The column as int64.

    Raises:
      DataError: naming the line and field of the first entry that is not an exact integer
        (`exact_integers`: text, a fraction, inf, 1e30) or, with `minimum`, is below it.
    """
    values = pd.to_numeric(frame[column], errors="coerce")
    good = exact_integers(values)
    if minimum is not None:
        good[good] = values.to_numpy()[good] >= minimum
    if not good.all():
        position = int(np.flatnonzero(~good)[0])
        line = int(frame.index[position]) + header_lines + 1
        if frame[column].iloc[position] == "":
            short = short_row(frame, position)
            if short:
                raise DataError(short)
        raise DataError(
            f"{source}: line {line}, field {column!r}: expected "
            f"{_integer_expected(values.iloc[position], minimum)}, got "
            f"{frame[column].iloc[position]!r}"
        )
    return values.to_numpy().astype(np.int64)


def convert_rows(
    name: str,
    user: np.ndarray,
    time: np.ndarray,
    item: np.ndarray,
    click: np.ndarray,
    n_items: int,
    seed: int,
    source: str,
    line: np.ndarray | None = None,
    split: np.ndarray | None = None,
    item_features: ItemFeatures | None = None,
    user_names: np.ndarray | None = None,
) -> Converted:
    """Converts aligned row arrays into a dataset (see the module docstring).

    Args:
      name: dataset name.
      user, time, item, click: `[R]` int arrays; items dense in 0..n_items-1, click 0/1.
      n_items: catalogue size.
      seed: shuffles each display set (and draws the split when `split` is None).
      source: file name for error messages.
      line: `[R]` line numbers of the rows in `source` (for error messages).
      split: `[R]` split code per row (0 train, 1 validation, 2 test), constant per user; None
        draws a 50/25/25 user split with `seed`.
      item_features: defaults to one-hot identity.
      user_names: `[U]` the input's own id of each (re-indexed) user id, for error messages
        (default: the user ids themselves).
    """

    def shown(user_id: int) -> str:
        """User `user_id` as the input names it: `7`, or `'ann'` for a string id."""
        name = user_id if user_names is None else user_names[int(user_id)]
        name = name.item() if isinstance(name, np.generic) else name
        return repr(name) if isinstance(name, str) else str(name)

    rows = len(user)
    if rows == 0:
        raise DataError(f"{source}: no data rows")
    line = np.arange(2, rows + 2) if line is None else line
    frame = pd.DataFrame({"user": user, "time": time, "item": item, "click": click, "line": line})
    if split is not None:
        frame["split"] = split
    bad_click = ~frame["click"].isin([0, 1])
    if bad_click.any():
        r = frame[bad_click].iloc[0]
        raise DataError(
            f"{source}: line {r['line']}, click field: expected 0 or 1, got {r['click']}"
        )
    bad_item = (frame["item"] < 0) | (frame["item"] >= n_items)
    if bad_item.any():
        r = frame[bad_item].iloc[0]
        raise DataError(
            f"{source}: line {r['line']}, item field: expected an id in "
            f"0..{n_items - 1}, got {r['item']}"
        )
    key = ["user", "time", "item", "click"] + (["split"] if split is not None else [])
    frame = frame.drop_duplicates(subset=key)
    # An item twice in one display set keeps its clicked row.
    frame = frame.sort_values(["user", "time", "item", "click", "line"])
    frame = frame.drop_duplicates(subset=["user", "time", "item"], keep="last")
    rows_kept = len(frame)

    # Display sets: (user, time). Clicks per set must be 0 or 1.
    set_key = ["user", "time"]
    clicks_per_set = frame.groupby(set_key, sort=False)["click"].transform("sum")
    if (clicks_per_set > 1).any():
        r = frame[clicks_per_set > 1]
        first = r.iloc[0]
        lines = sorted(
            r[(r["user"] == first["user"]) & (r["time"] == first["time"]) & (r["click"] == 1)][
                "line"
            ].tolist()
        )
        raise DataError(
            f"{source}: lines {lines}: a display set (user {shown(first['user'])}, time "
            f"{first['time']}) has {len(lines)} clicked rows; expected at most one"
        )
    if split is not None:
        bad_split = ~frame["split"].isin(list(SPLIT_CODES))
        if bad_split.any():
            r = frame[bad_split].sort_values("line").iloc[0]
            raise DataError(
                f"{source}: line {r['line']}, split field: expected 0, 1 or 2, got {r['split']}"
            )
        per_user = frame.groupby("user")["split"].nunique()
        if (per_user > 1).any():
            bad_user = per_user.index[per_user > 1][0]
            rows = frame[frame["user"] == bad_user].sort_values("line")
            firsts = rows.groupby("split", sort=True)["line"].min()
            where = ", ".join(f"split {code} at line {line}" for code, line in firsts.items())
            raise DataError(
                f"{source}: user {shown(bad_user)} has rows in more than one split ({where}); "
                "expected one split per user"
            )

    # Shuffle within each display set: order by (user, time, random key).
    rng = np.random.default_rng(seed)
    frame = frame.assign(shuffle=rng.permutation(len(frame)))
    frame = frame.sort_values(["user", "time", "shuffle"], kind="stable")
    users_arr = frame["user"].to_numpy()
    times = frame["time"].to_numpy()
    new_set = np.ones(len(frame), dtype=bool)
    new_set[1:] = (users_arr[1:] != users_arr[:-1]) | (times[1:] != times[:-1])
    set_start = np.flatnonzero(new_set)
    sizes = np.diff(np.append(set_start, len(frame)))
    max_display = int(sizes.max())
    n_events = len(set_start)
    within = np.arange(len(frame)) - np.repeat(set_start, sizes)
    event_of_row = np.repeat(np.arange(n_events), sizes)
    display = np.zeros((n_events, max_display), dtype=np.int32)
    display[event_of_row, within] = frame["item"].to_numpy()
    mask = np.arange(max_display)[None, :] < sizes[:, None]
    clicked_pos = np.full(n_events, NO_CLICK, dtype=np.int32)
    click_rows = frame["click"].to_numpy() == 1
    clicked_pos[event_of_row[click_rows]] = within[click_rows]
    event_user = users_arr[set_start]
    user_ids, user_start = np.unique(event_user, return_index=True)
    offsets = np.append(user_start, n_events).astype(np.int64)
    events = EventArrays(
        user_ids=user_ids,
        event_offsets=offsets,
        display=display,
        display_mask=mask,
        clicked_pos=clicked_pos,
        n_items=n_items,
    )

    # The original layout: [user_id, [display list per t], [clicked id per t]].
    clicked_item = events.clicked_item.tolist()
    display_lists = [d[:s].tolist() for d, s in zip(display, sizes)]
    behavior = [
        [int(u), display_lists[a:b], clicked_item[a:b]]
        for u, a, b in zip(user_ids, offsets[:-1], offsets[1:])
    ]

    if split is not None:
        user_split = frame.groupby("user")["split"].first()
        parts = tuple([int(u) for u in user_ids if user_split[u] == code] for code in (0, 1, 2))
    else:
        parts = resplit_users([int(u) for u in user_ids], seed)
    position = {int(u): i for i, u in enumerate(user_ids)}
    user_rows = {
        name: np.array([position[u] for u in part], dtype=np.int64)
        for name, part in zip(("train", "vali", "test"), parts)
    }
    features = item_features or ItemFeatures(n_items)
    dataset = ClickDataset(name=name, behavior=behavior, item_features=features, split=parts)
    stats = dataset_statistics(events, rows, rows_kept, parts, features.feature_dim)
    return Converted(
        dataset=dataset, events=events, user_rows=user_rows, stats=stats, source=source
    )
