"""Retailrocket `events.csv` as display sets and clicks.

Columns `timestamp,visitorid,event,itemid,transactionid` (timestamp in Unix milliseconds; event
one of `view`, `addtocart`, `transaction`; `transactionid` is not used). The log has no
impressions, so ganrl defines, per visitor (the user), with the rows in time order (ties by
line):
- session: it ends where the visitor is idle for more than `session_gap_minutes` (default 30);
- click: an `addtocart` or `transaction` of an item; a repeated action on the item of the
  session's previous action (a transaction after its add-to-cart) is the same click and is
  dropped;
- segment: a click closes the segment of the rows since the previous click of the session (or
  its start), itself included; the views after a session's last click form an open segment;
- display sets: a segment's distinct items (an item's last row; the clicked row wins), in the
  order of that row, cut into pages of at most `max_display` items counted from the segment's
  end: the last page holds the clicked item and the `max_display - 1` items viewed last before
  it; every other page, and every page of an open segment, is a display set with no click (the
  visitor saw those items and did not act on them). So no view is dropped;
- users and items are re-indexed densely from 0 in numeric order (the visitorid and itemid of
  each dense id: `NAME-users.csv`, `NAME-items.csv`); users are split 50/25/25 at random with
  the seed; each display set is shuffled with the seed.
In the statistics, `rows` counts the file's rows and `rows_kept` the displayed rows.
Everything is vectorised (the real file has 2.7M rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ganrl.data.convert import (
    Converted,
    IdMap,
    convert_rows,
    integer_column,
    line_numbers,
    read_table,
    require_columns,
)
from ganrl.data.safe_io import DataError

COLUMNS = ["timestamp", "visitorid", "event", "itemid"]
EVENTS = ("view", "addtocart", "transaction")
MS_PER_MINUTE = 60_000
# Unix times in seconds from 1973 on (1e8) read as milliseconds fall before March 1973 (1e11):
# a file whose every timestamp lies in between was written in seconds.
SECONDS_LOOK = (10**8, 10**11)


def refuse_seconds(timestamp: np.ndarray, line: np.ndarray, path: str) -> None:
    """`DataError` when every timestamp looks like Unix seconds, not the milliseconds the
    reader expects (sessions would then end only after 30,000 idle minutes)."""
    low, high = SECONDS_LOOK
    if len(timestamp) and timestamp.min() >= low and timestamp.max() < high:
        first = int(np.argmax(timestamp))
        raise DataError(
            f"{path}: line {line[first]}, field 'timestamp': expected Unix milliseconds, got "
            f"{timestamp[first]}, which is a time in seconds (every timestamp of the file "
            f"lies in [{low:.0e}, {high:.0e}), before 1973 in milliseconds); multiply the "
            "column by 1000"
        )


def session_starts(visitor: np.ndarray, timestamp: np.ndarray, gap_ms: float) -> np.ndarray:
    """`[N]` bool, True where a session starts.

    Args:
      visitor, timestamp: `[N]` rows sorted by visitor, then time.
      gap_ms: the longest idle time inside a session, in milliseconds.
    """
    start = np.ones(len(visitor), dtype=bool)
    start[1:] = (visitor[1:] != visitor[:-1]) | (timestamp[1:] - timestamp[:-1] > gap_ms)
    return start


def repeated_actions(action: np.ndarray, item: np.ndarray, session: np.ndarray) -> np.ndarray:
    """`[N]` bool, True on an action whose item is that of the session's previous action.

    Args:
      action: `[N]` bool, the add-to-cart and transaction rows.
      item, session: `[N]` ids, rows in time order.
    """
    rows = np.flatnonzero(action)
    repeat = np.zeros(len(action), dtype=bool)
    same = (session[rows[1:]] == session[rows[:-1]]) & (item[rows[1:]] == item[rows[:-1]])
    repeat[rows[1:][same]] = True
    return repeat


def page_keys(segment: np.ndarray, max_display: int) -> np.ndarray:
    """`[N]` an increasing display-set key per row: a segment's rows cut into pages of
    `max_display` counted from its end.

    Args:
      segment: `[N]` non-decreasing segment ids; the rows of a segment in display order.
      max_display: largest page.
    """
    n = len(segment)
    first = np.ones(n, dtype=bool)
    first[1:] = segment[1:] != segment[:-1]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, n))
    position = np.arange(n) - np.repeat(starts, sizes)
    from_end = np.repeat(sizes, sizes) - 1 - position
    pages = (np.repeat(sizes, sizes) - 1) // max_display + 1
    chronological_page = pages - 1 - from_end // max_display
    segment_rank = np.repeat(np.arange(len(starts), dtype=np.int64), sizes)
    return segment_rank * (int(pages.max()) if n else 1) + chronological_page


def read_retailrocket(
    path: str, name: str, seed: int, session_gap_minutes: float = 30.0, max_display: int = 10
) -> Converted:
    """Converts a Retailrocket `events.csv` (see the module docstring).

    Raises:
      DataError: naming the file, line and field (missing column, non-integer timestamp or
        id, unknown event type) or the flag at fault.
    """
    if max_display < 1:
        raise DataError(f"--max_display: expected at least 1, got {max_display}")
    if not session_gap_minutes > 0:
        raise DataError(
            f"--session_gap_minutes: expected a positive number, got {session_gap_minutes}"
        )
    frame = read_table(path, ",")
    require_columns(frame, COLUMNS, path)
    timestamp = integer_column(frame, "timestamp", path)
    visitor = integer_column(frame, "visitorid", path)
    item = integer_column(frame, "itemid", path)
    event = frame["event"].to_numpy(dtype=str)
    line = line_numbers(frame)
    refuse_seconds(timestamp, line, path)
    bad = ~np.isin(event, EVENTS)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: line {line[first]}, field 'event': expected one of "
            f"{list(EVENTS)}, got {str(event[first])!r}"
        )
    order = np.lexsort((line, timestamp, visitor))
    timestamp, visitor, item, event, line = (
        a[order] for a in (timestamp, visitor, item, event, line)
    )
    session = np.cumsum(session_starts(visitor, timestamp, session_gap_minutes * MS_PER_MINUTE))
    action = event != "view"
    keep = ~repeated_actions(action, item, session)
    session, visitor, item, action, line, timestamp = (
        a[keep] for a in (session, visitor, item, action, line, timestamp)
    )
    # A segment starts with a session or right after a click.
    segment_start = np.ones(len(session), dtype=bool)
    segment_start[1:] = (session[1:] != session[:-1]) | action[:-1]
    rows = pd.DataFrame(
        {
            "segment": np.cumsum(segment_start),
            "item": item,
            "click": action.astype(np.int64),
            "line": line,
            "user": visitor,
        }
    )
    # An item's last row in its segment (the clicked row wins: it is the segment's last row);
    # the rows stay in time order.
    rows = rows.drop_duplicates(["segment", "item"], keep="last")
    key = page_keys(rows["segment"].to_numpy(), max_display)
    users, user_codes = np.unique(rows["user"].to_numpy(), return_inverse=True)
    items, item_codes = np.unique(rows["item"].to_numpy(), return_inverse=True)
    converted = convert_rows(
        name,
        user_codes,
        key,
        item_codes,
        rows["click"].to_numpy(),
        len(items),
        seed,
        path,
        line=rows["line"].to_numpy(),
        user_names=users,
    )
    converted.stats["rows"] = int(len(order))
    converted.user_map = IdMap("visitorid", users)
    converted.item_map = IdMap("itemid", items)
    return converted
