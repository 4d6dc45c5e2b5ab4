"""Reader of the paper's released format (`yelp.txt`, `tb.txt`, `rsc.txt`, or any file of that
schema).

Tab-separated with the header
`SessionId Time ItemId is_click raw_index session_new_index item_new_index tr_val_tst`:
`session_new_index` is the user, `item_new_index` the item (dense from 0), rows with the same
`Time` one display set (a `Time` value belongs to one user), `is_click` the click (0/1) and
`tr_val_tst` the user's split (0 train, 1 validation, 2 test). `SessionId`, `ItemId` and
`raw_index` are not used. The conversion's rules (duplicates, repeated items, shuffling, two
clicks) are those of `ganrl.data.convert`; the item count is the largest id plus one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ganrl.data.convert import (Converted, convert_rows, integer_column, line_numbers,
                                read_table, require_columns)
from ganrl.data.safe_io import DataError

RELEASED_COLUMNS = ("SessionId", "Time", "ItemId", "is_click", "raw_index",
                    "session_new_index", "item_new_index", "tr_val_tst")
# The columns the reader needs (the others may be absent).
USED_COLUMNS = ["Time", "is_click", "session_new_index", "item_new_index", "tr_val_tst"]


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
      DataError: naming the file, line and field (missing column, non-integer id, a `Time`
        shared by two users, two clicks in a display set, a user in two splits, ...).
    """
    frame = read_table(path, "\t")
    require_columns(frame, USED_COLUMNS, path)
    values = {c: integer_column(frame, c, path) for c in USED_COLUMNS}
    lines = line_numbers(frame)
    owners = pd.DataFrame({"t": values["Time"], "u": values["session_new_index"]}
                          ).groupby("t")["u"].nunique()
    if (owners > 1).any():
        t = owners.index[owners > 1][0]
        shown = lines[values["Time"] == t].tolist()[:6]
        raise DataError(f"{path}: lines {shown}: Time {t} belongs to more than one user "
                        "(session_new_index); expected one display set per Time value")
    items = values["item_new_index"]
    if items.min() < 0:
        first = int(np.flatnonzero(items < 0)[0])
        raise DataError(f"{path}: line {lines[first]}, field 'item_new_index': expected a "
                        f"non-negative id, got {items[first]}")
    return convert_rows(name, values["session_new_index"], values["Time"], items,
                        values["is_click"], int(items.max()) + 1, seed, path, line=lines,
                        split=values["tr_val_tst"])
