"""Generic reader: any CSV of click logs, one row per displayed item, through a column mapping
(`--columns user=COL,time=COL,item=COL,click=COL[,split=COL]`).

- user and item ids may be any strings; they are re-indexed densely from 0 in sorted order
  (numeric order when every id of the column is an integer written as Python writes it, so
  "007" and "7" stay two ids and "007" reads back as "007"), and the original ids of the
  dense ones are kept (`Converted.user_map`, `item_map`: `NAME-users.csv`, `NAME-items.csv`);
- time must be an integer; the rows of one user with the same time form a display set;
- click is 0 or 1; a display set with no click is a no-click event, one with two clicked items
  an error naming the lines (`ganrl.data.convert`);
- split, optional, is 0 train, 1 validation or 2 test and constant per user; without it users
  are split 50/25/25 at random with the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ganrl.data.convert import (
    Converted,
    IdMap,
    convert_rows,
    exact_integers,
    integer_column,
    line_numbers,
    read_table,
    require_columns,
    short_row,
)
from ganrl.data.safe_io import DataError

ROLES = ("user", "time", "item", "click", "split")
# An integer as str(int) writes it: "0", "7", "-12", not "007", "+7", "-0" or "7.0".
CANONICAL_INTEGER = r"0|-?[1-9][0-9]*"
REQUIRED_ROLES = ("user", "time", "item", "click")


def parse_column_mapping(spec: str) -> dict[str, str]:
    """`user=a,time=b,item=c,click=d[,split=e]` -> {'user': 'a', ...}.

    Raises:
      DataError: naming the `--columns` part that is malformed or the roles that are missing.
    """
    mapping = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise DataError(f"--columns: {part!r} is not ROLE=COLUMN")
        role, column = (x.strip() for x in part.split("=", 1))
        if role not in ROLES:
            raise DataError(
                f"--columns: unknown role {role!r}: expected user, time, item, "
                "click and optionally split"
            )
        mapping[role] = column
    missing = [r for r in REQUIRED_ROLES if r not in mapping]
    if missing:
        raise DataError(f"--columns: no column given for {missing}")
    return mapping


def dense_codes(frame: pd.DataFrame, column: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ids of `column` in sorted order (numeric order when every id is an
    integer in its canonical form: no leading zeros, sign or spaces, so that the ids read
    back as written) and `[R]` each row's index among them; `DataError` for an empty id."""
    values = frame[column].fillna("").to_numpy(dtype=str)
    empty = np.char.str_len(np.char.strip(values)) == 0
    if empty.any():
        position = int(np.flatnonzero(empty)[0])
        line = line_numbers(frame)[position]
        short = short_row(frame, position)
        if short:
            raise DataError(short)
        raise DataError(
            f"{source}: line {line}, field {column!r}: expected an id, got an empty field"
        )
    strings = pd.Series(values)
    numeric = pd.to_numeric(strings, errors="coerce")
    if strings.str.fullmatch(CANONICAL_INTEGER).all() and exact_integers(numeric).all():
        return np.unique(numeric.to_numpy().astype(np.int64), return_inverse=True)
    return np.unique(values, return_inverse=True)


# Separators `one_field_header` looks for in a header read as one field.
LIKELY_SEPARATORS = (",", ";", "\t", "|")


def one_field_header(path: str, header: str, sep: str) -> str:
    """The error for a file whose header is one field with separator `sep`: most likely the
    file has another separator, which it names when the header holds one."""
    guess = next((s for s in LIKELY_SEPARATORS if s != sep and s in header), None)
    hint = (
        f"the file looks {guess!r}-separated: give --csv_sep={guess!r}"
        if guess
        else "give the file's field separator with --csv_sep"
    )
    return (
        f"{path}: line 1: the header is one field {header!r} when split at "
        f"--csv_sep={sep!r}; {hint}"
    )


def read_csv_logs(
    path: str, name: str, seed: int, mapping: dict[str, str], sep: str = ","
) -> Converted:
    """Converts a CSV of click logs (see the module docstring).

    Args:
      path: the file (its first line names the columns).
      name: the dataset's name.
      seed: shuffles each display set and, without a split column, draws the split.
      mapping: role -> column name (`parse_column_mapping`).
      sep: the field separator; `\\t` (a backslash and t, as typed in a shell) is a tab.
    """
    sep = "\t" if sep == "\\t" else sep
    if len(sep) != 1:
        raise DataError(
            f"--csv_sep={sep!r}: expected one character (such as ',', ';', '|' or '\\t' for a tab)"
        )
    frame = read_table(path, sep)
    if len(frame.columns) == 1 and any(c not in frame.columns for c in mapping.values()):
        raise DataError(one_field_header(path, str(frame.columns[0]), sep))
    require_columns(frame, list(mapping.values()), path)
    time = integer_column(frame, mapping["time"], path)
    click = integer_column(frame, mapping["click"], path)
    split = integer_column(frame, mapping["split"], path) if "split" in mapping else None
    users, user_codes = dense_codes(frame, mapping["user"], path)
    items, item_codes = dense_codes(frame, mapping["item"], path)
    converted = convert_rows(
        name,
        user_codes,
        time,
        item_codes,
        click,
        len(items),
        seed,
        path,
        line=line_numbers(frame),
        split=split,
        user_names=users,
    )
    converted.user_map = IdMap(mapping["user"], users)
    converted.item_map = IdMap(mapping["item"], items)
    return converted
