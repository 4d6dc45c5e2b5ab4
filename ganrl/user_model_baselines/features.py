"""Per-(event, item) features of the baselines, computed with numpy from `EventArrays`.

Leakage rules (in the released files the clicked row is the last of its display set and a
clicked item often repeats its row, so both position and raw row counts give the click away):
- item statistics come from the training split's `EventArrays` only: display sets and clicks
  after de-duplication (`ganrl.data.item_stats.item_statistics`), never raw row counts;
- nothing reads the position of an item in its display set or the numeric value of an item
  id (ids are numbered in order of first appearance and the clicked row comes last, so both
  leak the click); features of a display set are permuted with it;
- leave-user-out: when the scored events belong to a training user, that user's own
  training display sets and clicks are taken out of the statistics, so a training event sees
  what a test event sees (the other users' behaviour), never its own click.

A user's history is the clicked items of her earlier events inside the same `EventArrays`, in
order. Shapes: `E` events, `D` the padded display width, `U` users, `F` features.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ganrl.data.dataset import EventArrays, ItemFeatures
from ganrl.data.item_stats import item_statistics, split_statistics

# Pseudo display sets of the Beta prior that smooths an item's click rate.
RATE_PRIOR_STRENGTH = 5.0

PAIR_FEATURES = (
    "log_display_sets",  # log(1 + training display sets showing the item)
    "log_clicks",  # log(1 + training clicks on the item)
    "click_rate_logit",  # logit of the smoothed click rate minus logit(prior)
    "unseen",  # 1 when no training display set showed the item
    "clicked_before",  # times the user clicked the item in earlier events
    "is_last_click",  # 1 when the item is the user's latest earlier click
    "shown_before",  # earlier display sets of the user that showed the item
    "shown_last_event",  # 1 when the user's previous display set showed it
    "log_set_size",  # log of the display set's size
    "click_rate_logit_vs_set",  # click_rate_logit minus its mean over the display set
    "log_display_sets_vs_set",  # log_display_sets minus its mean over the display set
    "cooccurrence",  # mean item similarity to the user's earlier clicks
    "cooccurrence_vs_set",  # cooccurrence minus its mean over the display set
)

# Largest number of floats in one dense block of a blocked computation.
MAX_BLOCK = 4_000_000


def event_users(events: EventArrays) -> np.ndarray:
    """`[E]` row (0..U-1) of each event's user."""
    return np.repeat(np.arange(events.n_users), events.events_per_user)


def count_earlier(
    record_keys: np.ndarray,
    record_events: np.ndarray,
    query_keys: np.ndarray,
    query_events: np.ndarray,
) -> np.ndarray:
    """For each query, how many records share its key and come from an earlier event.

    Args:
      record_keys: `[R]` int keys.
      record_events: `[R]` int event index of each record (>= 0).
      query_keys: `[Q]` int keys.
      query_events: `[Q]` int; records with event index strictly below count.

    Returns:
      `[Q]` int64 counts.
    """
    record_keys = np.asarray(record_keys, dtype=np.int64).ravel()
    query_keys = np.asarray(query_keys, dtype=np.int64).ravel()
    record_events = np.asarray(record_events, dtype=np.int64).ravel()
    query_events = np.asarray(query_events, dtype=np.int64).ravel()
    if len(record_keys) == 0 or len(query_keys) == 0:
        return np.zeros(len(query_keys), dtype=np.int64)
    # Dense key ids keep the composite key * span + event well inside int64.
    _, dense = np.unique(np.concatenate([record_keys, query_keys]), return_inverse=True)
    span = int(max(record_events.max(), query_events.max())) + 2
    records = np.sort(dense[: len(record_keys)] * span + record_events)
    query_dense = dense[len(record_keys) :] * span
    upper = query_dense + np.clip(query_events, 0, span - 1)
    return np.searchsorted(records, upper, "left") - np.searchsorted(records, query_dense, "left")


def last_click_before(events: EventArrays) -> np.ndarray:
    """`[E]` the item the user clicked most recently before each event, -1 if none."""
    clicked = events.clicked_pos >= 0
    index = np.arange(events.n_events)
    latest = np.maximum.accumulate(np.where(clicked, index, -1)) if events.n_events else index
    before = np.concatenate([[-1], latest[:-1]]).astype(np.int64)
    user_start = np.repeat(events.event_offsets[:-1], events.events_per_user)
    valid = before >= user_start
    return np.where(valid, events.clicked_item[np.maximum(before, 0)], -1).astype(np.int64)


def recent_clicks(events: EventArrays, k: int) -> np.ndarray:
    """`[E, k]` the user's k most recent earlier clicks, most recent first, -1 padded."""
    clicked = np.flatnonzero(events.clicked_pos >= 0)
    # Number of the user's clicks before each event, and the index of each click in `clicked`.
    users = event_users(events)
    clicks_before = count_earlier(users[clicked], clicked, users, np.arange(events.n_events))
    first_click = np.searchsorted(clicked, events.event_offsets[:-1])[users]
    out = np.full((events.n_events, k), -1, dtype=np.int64)
    items = events.clicked_item[clicked]
    for j in range(k):  # k is small (a handful of slots); each step is vectorised over events
        has = clicks_before > j
        out[has, j] = items[first_click[has] + clicks_before[has] - 1 - j]
    return out


def history_click_matrix(events: EventArrays) -> sp.csr_matrix:
    """`[E, n_items]` sparse counts of the items each user clicked in her earlier events."""
    clicked = np.flatnonzero(events.clicked_pos >= 0)
    users = event_users(events)
    user_end = events.event_offsets[1:][users[clicked]]
    later = user_end - clicked - 1  # events after each click, same user
    rows = np.repeat(clicked + 1, later) + (
        np.arange(later.sum()) - np.repeat(np.cumsum(later) - later, later)
    )
    cols = np.repeat(events.clicked_item[clicked], later)
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)),
        shape=(events.n_events, events.n_items),
    )


def training_rows(events: EventArrays, train: EventArrays) -> np.ndarray:
    """`[E]` row in `train` of each event's user, -1 for users outside the training split."""
    row_of = {u: row for row, u in enumerate(np.asarray(train.user_ids).tolist())}
    rows = np.array(
        [row_of.get(u, -1) for u in np.asarray(events.user_ids).tolist()], dtype=np.int64
    )
    return rows[event_users(events)]


def user_item_matrix(events: EventArrays, clicks: bool = True) -> sp.csr_matrix:
    """`[U, n_items]` binary: which items each user clicked (or was shown, `clicks=False`)."""
    users = event_users(events)
    if clicks:
        keep = events.clicked_pos >= 0
        rows, cols = users[keep], events.clicked_item[keep]
    else:
        mask = np.asarray(events.display_mask, dtype=bool)
        rows, cols = np.broadcast_to(users[:, None], mask.shape)[mask], events.display[mask]
    matrix = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(events.n_users, events.n_items)
    )
    matrix.data[:] = 1.0
    return matrix


def history_features(events: EventArrays) -> np.ndarray:
    """`[E, D, 4]` float32: clicked_before, is_last_click, shown_before, shown_last_event."""
    mask = np.asarray(events.display_mask, dtype=bool)
    users = event_users(events)
    index = np.arange(events.n_events)
    keys = users[:, None].astype(np.int64) * events.n_items + events.display  # [E, D]
    clicked = np.flatnonzero(events.clicked_pos >= 0)
    click_keys = users[clicked] * events.n_items + events.clicked_item[clicked]
    query_events = np.broadcast_to(index[:, None], keys.shape)
    clicked_before = count_earlier(click_keys, clicked, keys, query_events)
    shown_keys, shown_events = keys[mask], query_events[mask]
    shown_before = count_earlier(shown_keys, shown_events, keys, query_events)
    shown_upto_last = count_earlier(shown_keys, shown_events, keys, query_events - 1)
    last = last_click_before(events)
    out = np.stack(
        [
            clicked_before.reshape(keys.shape),
            (events.display == last[:, None]) & (last[:, None] >= 0),
            shown_before.reshape(keys.shape),
            (shown_before - shown_upto_last).reshape(keys.shape),
        ],
        axis=-1,
    )
    return np.where(mask[..., None], out, 0).astype(np.float32)


def masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`[E]` mean of `values [E, D]` over the real items."""
    return (values * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)


class Cooccurrence:
    """Item co-occurrence over the training users' clicks, with leave-user-out.

    sim(i, j) = co(i, j) / sqrt(n_i n_j) for distinct items, where co(i, j) counts the
    training users who clicked both and n_i those who clicked i (cosine similarity of the
    items' user sets; 0 when a count is 0). The score of item j at an event is the sum over
    the user's earlier clicks h (with repeats) of sim(h, j). When the user is a training user,
    her own clicks are first taken out of co and n, so a training event's score is computed
    from the other users, as a test event's is.
    """

    def __init__(self, train: EventArrays, max_block: int = MAX_BLOCK):
        self.train = train
        self.clicked = user_item_matrix(train)  # [U, n]
        co = (self.clicked.T @ self.clicked).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        self.co = co  # [n, n]
        self.item_users = np.asarray(self.clicked.sum(axis=0)).ravel()  # n_i
        self.max_block = max_block

    def own_clicks(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """1 where training row `rows` (-1: none) clicked `items` (same shapes), else 0."""
        flat_rows, flat_items = rows.ravel(), items.ravel()
        out = np.zeros(flat_rows.shape)
        inside = flat_rows >= 0
        if inside.any():
            out[inside] = np.asarray(self.clicked[flat_rows[inside], flat_items[inside]]).ravel()
        return out.reshape(rows.shape)

    def scores(self, events: EventArrays) -> np.ndarray:
        """`[E, D]` co-occurrence score of every displayed item (0 on padding)."""
        history = history_click_matrix(events).tocoo()  # [E, n]
        rows = training_rows(events, self.train)
        own_h = self.own_clicks(rows[history.row], history.col)
        # a[e, h] = H[e, h] / sqrt(n_h - own_h), with own_h = 1 for a training user's clicks.
        left = self.item_users[history.col] - own_h
        weight = np.divide(
            history.data,
            np.sqrt(np.maximum(left, 1)),
            where=left > 0,
            out=np.zeros(len(history.data)),
        )
        a = sp.csr_matrix((weight, (history.row, history.col)), shape=history.shape)
        own_total = np.bincount(history.row, weights=weight * own_h, minlength=events.n_events)
        display = events.display
        own_j = self.own_clicks(np.broadcast_to(rows[:, None], display.shape), display)
        a_j = gather(a, display)
        block = max(1, self.max_block // max(events.n_items, 1))
        raw = np.zeros(display.shape)
        for start in range(0, events.n_events, block):  # blocks of events bound the memory
            part = slice(start, start + block)
            raw[part] = gather((a[part] @ self.co).toarray(), display[part])
        # co(h, j) - own_h own_j, summed with weights a over h != j.
        raw -= own_j * (own_total[:, None] - a_j * own_j)
        left_j = self.item_users[display] - own_j
        out = np.divide(
            raw, np.sqrt(np.maximum(left_j, 1)), where=left_j > 0, out=np.zeros(display.shape)
        )
        return np.where(events.display_mask, np.maximum(out, 0.0), 0.0)


def gather(item_scores: sp.spmatrix | np.ndarray, display: np.ndarray) -> np.ndarray:
    """`[E, D]` entries (e, display[e, d]) of `item_scores [E, n_items]` (sparse or dense)."""
    rows = np.broadcast_to(np.arange(display.shape[0])[:, None], display.shape).ravel()
    if sp.issparse(item_scores):
        values = np.asarray(item_scores.tocsr()[rows, display.ravel()]).ravel()
    else:
        values = item_scores[rows, display.ravel()]
    return values.reshape(display.shape).astype(np.float64)


@dataclasses.dataclass
class PairFeaturizer:
    """Turns events into per-(event, item) feature arrays, with statistics of `train`.

    Attributes:
      train: the training split (its statistics, and leave-user-out for its users).
      side_features: `[n_items, s]` float32 dense side features of the items, or None.
    """

    train: EventArrays
    side_features: np.ndarray | None = None

    def __post_init__(self):
        counts, _ = item_statistics(self.train)
        self.display_sets = counts[:, 0].astype(np.float64)
        self.clicks = counts[:, 1].astype(np.float64)
        shown = self.display_sets.sum()
        rate = self.clicks.sum() / shown if shown else 0.5
        self.prior_rate = float(np.clip(rate, 1e-3, 1 - 1e-3))
        self.cooccurrence = Cooccurrence(self.train)

    @classmethod
    def from_item_features(
        cls, train: EventArrays, item_features: ItemFeatures
    ) -> "PairFeaturizer":
        """Uses the items' dense side features (not any `train:` statistics columns)."""
        side, _ = split_statistics(item_features)
        return cls(train, side.dense)

    @property
    def names(self) -> tuple[str, ...]:
        extra = 0 if self.side_features is None else self.side_features.shape[1]
        return PAIR_FEATURES + tuple(f"side{i}" for i in range(extra))

    def own_counts(self, events: EventArrays) -> tuple[np.ndarray, np.ndarray]:
        """`[E, D]` display sets and clicks of each displayed item by the event's own user in
        the training split (0 for users outside it): what leave-user-out subtracts."""
        rows = training_rows(events, self.train)
        n_items = events.n_items
        keys = np.where(rows[:, None] >= 0, rows[:, None] * n_items + events.display, -1)
        train, mask = self.train, np.asarray(self.train.display_mask, dtype=bool)
        t_users = event_users(train)
        t_keys = t_users[:, None].astype(np.int64) * n_items + train.display
        t_clicked = np.flatnonzero(train.clicked_pos >= 0)
        everything = np.full(keys.size, train.n_events + 1)
        shown = count_earlier(t_keys[mask], np.zeros(mask.sum()), keys, everything)
        clicks = count_earlier(
            t_users[t_clicked] * n_items + train.clicked_item[t_clicked],
            np.zeros(len(t_clicked)),
            keys,
            everything,
        )
        outside = (keys < 0).ravel()
        shown[outside], clicks[outside] = 0, 0
        return shown.reshape(keys.shape), clicks.reshape(keys.shape)

    def __call__(self, events: EventArrays) -> np.ndarray:
        """`[E, D, F]` float32 features (`names`), 0 on padding."""
        mask = np.asarray(events.display_mask, dtype=bool)
        own_shown, own_clicks = self.own_counts(events)
        shown = np.maximum(self.display_sets[events.display] - own_shown, 0)
        clicks = np.maximum(self.clicks[events.display] - own_clicks, 0)
        a, p = RATE_PRIOR_STRENGTH, self.prior_rate
        rate = (clicks + a * p) / (shown + a)
        rate_logit = np.log(rate) - np.log1p(-rate) - (np.log(p) - np.log1p(-p))
        log_shown = np.log1p(shown)
        size = mask.sum(axis=1, keepdims=True)
        # The summed similarity grows with the history; its mean per earlier click compares
        # across events.
        clicks_before = np.asarray(history_click_matrix(events).sum(axis=1))
        cooccurrence = self.cooccurrence.scores(events) / np.maximum(clicks_before, 1)
        parts = [
            log_shown[..., None],
            np.log1p(clicks)[..., None],
            rate_logit[..., None],
            (shown <= 0)[..., None],
            history_features(events),
            np.broadcast_to(np.log(np.maximum(size, 1)), mask.shape)[..., None],
            (rate_logit - masked_mean(rate_logit, mask)[:, None])[..., None],
            (log_shown - masked_mean(log_shown, mask)[:, None])[..., None],
            cooccurrence[..., None],
            (cooccurrence - masked_mean(cooccurrence, mask)[:, None])[..., None],
        ]
        if self.side_features is not None:
            parts.append(self.side_features[events.display])
        out = np.concatenate([np.asarray(x, dtype=np.float32) for x in parts], axis=-1)
        return np.where(mask[..., None], out, 0.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Feature-wise mean and standard deviation over real (event, item) pairs."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, mask: np.ndarray) -> "Standardizer":
        """features `[E, D, F]`, mask `[E, D]`."""
        rows = features[np.asarray(mask, dtype=bool)]
        if len(rows) == 0:
            return cls(np.zeros(features.shape[-1]), np.ones(features.shape[-1]))
        std = rows.std(axis=0)
        return cls(rows.mean(axis=0), np.where(std > 1e-8, std, 1.0))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)


def click_labels(events: EventArrays) -> np.ndarray:
    """`[E, D]` bool: True at the clicked position of each event."""
    return np.arange(events.max_display)[None, :] == events.clicked_pos[:, None]
