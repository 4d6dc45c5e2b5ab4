"""Reader of the paper's released format (`yelp.txt`, `tb.txt`, `rsc.txt`, or any file of that
schema).

Tab-separated with the header
`SessionId Time ItemId is_click raw_index session_new_index item_new_index tr_val_tst`:
`session_new_index` is the user, `item_new_index` the item (dense from 0), rows with the same
`Time` one display set (a `Time` value belongs to one user), `is_click` the click (0/1) and
`tr_val_tst` the user's split (0 train, 1 validation, 2 test). `SessionId`, `ItemId` and
`raw_index` are not used. The conversion's rules (duplicates, repeated items, shuffling, two
clicks) are those of `ganrl.data.convert`; the item count is the largest id plus one, within a
bound (`catalogue_size`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ganrl.data.convert import (
    Converted,
    convert_rows,
    integer_column,
    line_numbers,
    read_table,
    require_columns,
)
from ganrl.data.safe_io import DataError

RELEASED_COLUMNS = (
    "SessionId",
    "Time",
    "ItemId",
    "is_click",
    "raw_index",
    "session_new_index",
    "item_new_index",
    "tr_val_tst",
)
# The columns the reader needs (the others may be absent).
USED_COLUMNS = ["Time", "is_click", "session_new_index", "item_new_index", "tr_val_tst"]
ID_COLUMNS = ("session_new_index", "item_new_index")  # dense from 0: never negative
# The catalogue (largest item id + 1) may be at most this many times the distinct ids, or
# this many items, whichever is larger (`catalogue_size`).
CATALOGUE_SPREAD = 10
CATALOGUE_MIN_BOUND = 1000


def is_released_format(path: str) -> bool:
    """Whether `path` starts with a header holding the released format's used columns."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except OSError:
        return False
    return all(c in header for c in USED_COLUMNS)


def read_released(path: str, name: str, seed: int) -> Converted:
    """Converts a released-format file.

    Args:
      path: the tab-separated file.
      name: the dataset's name.
      seed: shuffles each display set.

    Raises:
      DataError: naming the file, line and field (missing column, non-integer or negative
        id, a `Time` shared by two users, two clicks in a display set, a user in two splits,
        an item id far beyond the others, ...).
    """
    frame = read_table(path, "\t")
    require_columns(frame, USED_COLUMNS, path)
    values = {
        c: integer_column(frame, c, path, minimum=0 if c in ID_COLUMNS else None)
        for c in USED_COLUMNS
    }
    lines = line_numbers(frame)
    owners = (
        pd.DataFrame({"t": values["Time"], "u": values["session_new_index"]})
        .groupby("t")["u"]
        .nunique()
    )
    if (owners > 1).any():
        t = owners.index[owners > 1][0]
        shown = lines[values["Time"] == t].tolist()[:6]
        raise DataError(
            f"{path}: lines {shown}: Time {t} belongs to more than one user "
            "(session_new_index); expected one display set per Time value"
        )
    items = values["item_new_index"]
    return convert_rows(
        name,
        values["session_new_index"],
        values["Time"],
        items,
        values["is_click"],
        catalogue_size(items, lines, path),
        seed,
        path,
        line=lines,
        split=values["tr_val_tst"],
    )


def catalogue_size(items: np.ndarray, lines: np.ndarray, source: str) -> int:
    """The catalogue of dense item ids `items` (`[R]`, non-negative): the largest plus one.

    Ids are meant to be dense from 0, so the catalogue may hold at most
    `max(CATALOGUE_MIN_BOUND, CATALOGUE_SPREAD * distinct ids)` items: one stray huge id would
    otherwise size every item table (and training's memory) by itself.

    Raises:
      DataError: naming the line of the largest id and the bound.
    """
    largest = int(items.max())
    distinct = len(np.unique(items))
    bound = max(CATALOGUE_MIN_BOUND, CATALOGUE_SPREAD * distinct)
    if largest + 1 > bound:
        line = lines[int(np.argmax(items))]
        raise DataError(
            f"{source}: line {line}, field 'item_new_index': expected ids dense from 0, got "
            f"{largest}: a catalogue of {largest + 1} items for {distinct} distinct ids "
            f"(at most max({CATALOGUE_MIN_BOUND}, {CATALOGUE_SPREAD} x distinct ids) = {bound}"
            "); re-index the items, or read the file with --columns, which re-indexes them"
        )
    return largest + 1
