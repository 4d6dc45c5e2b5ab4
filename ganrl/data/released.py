"""Reader of the paper's released format (`yelp.txt`, `tb.txt`, `rsc.txt`, or any file of
that schema), and of any CSV of click logs through a column mapping.

Released format: tab-separated with the header
`SessionId Time ItemId is_click raw_index session_new_index item_new_index tr_val_tst`;
`session_new_index` is the user, `item_new_index` the item (dense from 0), rows with the same
`Time` one display set, `is_click` the click and `tr_val_tst` the user's split (0 train,
1 validation, 2 test). See `ganrl.data.convert` for the conversion's rules.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ganrl.data.convert import Converted, convert_rows, integer_column, require_columns
from ganrl.data.safe_io import DataError

RELEASED_COLUMNS = ["SessionId", "Time", "ItemId", "is_click", "raw_index",
                    "session_new_index", "item_new_index", "tr_val_tst"]


def read_table(path: str, sep: str) -> pd.DataFrame:
    """Reads a delimited file as strings; `DataError` for a missing or empty file."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file: expected a header and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot parse: {e}") from None
    if frame.empty:
        raise DataError(f"{path}: no data rows after the header")
    return frame


def is_released_format(path: str) -> bool:
    """Whether `path` starts with the released format's header."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except OSError:
        return False
    return all(c in header for c in RELEASED_COLUMNS if c not in ("SessionId", "ItemId",
                                                                   "raw_index"))


def read_released(path: str, name: str, seed: int) -> Converted:
    """Converts a released-format file."""
    frame = read_table(path, "\t")
    needed = ["Time", "is_click", "session_new_index", "item_new_index", "tr_val_tst"]
    require_columns(frame, needed, path)
    values = {c: integer_column(frame, c, path) for c in needed}
    # Each Time value is one display set and belongs to one user.
    per_time = pd.DataFrame({"t": values["Time"], "u": values["session_new_index"]})
    owners = per_time.groupby("t")["u"].nunique()
    if (owners > 1).any():
        t = owners.index[owners > 1][0]
        lines = (np.flatnonzero(values["Time"] == t) + 2).tolist()[:6]
        raise DataError(f"{path}: lines {lines}: Time {t} belongs to more than one user "
                        "(session_new_index); expected one display set per Time value")
    items = values["item_new_index"]
    if items.min() < 0:
        line = int(np.flatnonzero(items < 0)[0]) + 2
        raise DataError(f"{path}: line {line}, field 'item_new_index': expected a "
                        f"non-negative id, got {items[line - 2]}")
    return convert_rows(name, values["session_new_index"], values["Time"], items,
                        values["is_click"], int(items.max()) + 1, seed, path,
                        split=values["tr_val_tst"])


def parse_column_mapping(spec: str) -> dict[str, str]:
    """`user=a,time=b,item=c,click=d[,split=e]` -> {'user': 'a', ...}."""
    mapping = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise DataError(f"--columns: {part!r} is not ROLE=COLUMN")
        role, column = (x.strip() for x in part.split("=", 1))
        if role not in ("user", "time", "item", "click", "split"):
            raise DataError(f"--columns: unknown role {role!r}: expected user, time, item, "
                            "click and optionally split")
        mapping[role] = column
    missing = [r for r in ("user", "time", "item", "click") if r not in mapping]
    if missing:
        raise DataError(f"--columns: no column given for {missing}")
    return mapping


def read_csv_logs(path: str, name: str, seed: int, mapping: dict[str, str],
                  sep: str = ",") -> Converted:
    """Converts any CSV of click logs: one row per displayed item, mapped by `mapping`.

    User and item ids may be any strings (re-indexed densely in sorted order); time must be
    an integer (rows of one user with the same time form a display set); click 0/1; an
    optional split column (0 train, 1 validation, 2 test), else a 50/25/25 user split drawn
    with `seed`.
    """
    frame = read_table(path, sep)
    require_columns(frame, list(mapping.values()), path)
    time = integer_column(frame, mapping["time"], path)
    click = integer_column(frame, mapping["click"], path)
    split = integer_column(frame, mapping["split"], path) if "split" in mapping else None
    users, user_codes = np.unique(frame[mapping["user"]].to_numpy(), return_inverse=True)
    items, item_codes = np.unique(frame[mapping["item"]].to_numpy(), return_inverse=True)
    return convert_rows(name, user_codes, time, item_codes, click, len(items), seed, path,
                        split=split)
