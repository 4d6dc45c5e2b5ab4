"""Retailrocket `events.csv` as display sets and clicks.

Columns `timestamp,visitorid,event,itemid,transactionid` (Unix milliseconds; event one of
`view`, `addtocart`, `transaction`). ganrl defines, per visitor (the user), in time order:
- a session ends where the visitor is idle for more than `session_gap_minutes` (default 30);
- within a session, an `addtocart` or `transaction` is a click on its item; it closes a
  display set made of the distinct items the visitor viewed since the previous click of the
  session (the most recent `max_display`, the clicked item always among them); a repeated
  action on the item just clicked (a transaction after its add-to-cart) is not a new click;
- the views after a session's last click form a display set with no click;
- users and items are re-indexed densely in sorted order; users split 50/25/25 by seed.
Everything is vectorised (the real file has 2.7M rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ganrl.data.convert import Converted, convert_rows, integer_column, require_columns
from ganrl.data.released import read_table
from ganrl.data.safe_io import DataError

COLUMNS = ["timestamp", "visitorid", "event", "itemid"]
EVENTS = ("view", "addtocart", "transaction")


def read_retailrocket(path: str, name: str, seed: int, session_gap_minutes: float = 30.0,
                      max_display: int = 10) -> Converted:
    frame = read_table(path, ",")
    require_columns(frame, COLUMNS, path)
    ts = integer_column(frame, "timestamp", path)
    visitor = integer_column(frame, "visitorid", path)
    item_raw = integer_column(frame, "itemid", path)
    event = frame["event"].to_numpy()
    bad = ~np.isin(event, EVENTS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: line {row + 2}, field 'event': expected one of {EVENTS}, "
                        f"got {event[row]!r}")
    line = np.arange(2, len(frame) + 2)
    order = np.lexsort((line, ts, visitor))
    ts, visitor, item_raw, event, line = (a[order] for a in (ts, visitor, item_raw, event, line))
    action = event != "view"
    n = len(ts)
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = ((visitor[1:] != visitor[:-1])
                       | (ts[1:] - ts[:-1] > session_gap_minutes * 60_000))
    session = np.cumsum(new_session)
    # A repeated action on the item just acted on in the same session is no new click.
    prev_action_item = pd.Series(np.where(action, item_raw, -1)).replace(-1, np.nan)
    prev_action_item = prev_action_item.groupby(session).shift(1).groupby(session).ffill()
    repeat = action & (prev_action_item.to_numpy() == item_raw)
    action &= ~repeat
    # Segment: the rows up to and including a click (views after the last click: open).
    segment = np.cumsum(action) - action + session * (n + 1)
    keep = ~repeat
    seg, itm, act, lin, vis, t = (a[keep] for a in (segment, item_raw, action, line,
                                                     visitor, ts))
    frame = pd.DataFrame({"seg": seg, "item": itm, "click": act.astype(np.int64),
                          "line": lin, "user": vis, "t": t})
    # Distinct items per segment (the clicked row wins), the most recent max_display.
    frame = frame.sort_values(["seg", "item", "click", "t"]).drop_duplicates(
        ["seg", "item"], keep="last")
    frame = frame.sort_values(["seg", "click", "t"])  # the click sorts last: always kept
    frame = frame.groupby("seg", sort=False).tail(max_display)
    users, user_codes = np.unique(frame["user"].to_numpy(), return_inverse=True)
    items, item_codes = np.unique(frame["item"].to_numpy(), return_inverse=True)
    converted = convert_rows(name, user_codes, frame["seg"].to_numpy(), item_codes,
                             frame["click"].to_numpy(), len(items), seed, path,
                             line=frame["line"].to_numpy())
    converted.stats["rows"] = int(len(order))
    return converted
