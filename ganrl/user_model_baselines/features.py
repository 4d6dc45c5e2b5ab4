"""Per-(event, item) features of the baselines, computed with numpy from `EventArrays`.

Leakage rules (in the released files the clicked row is the last of its display set and a
clicked item often repeats its row, so both position and raw row counts give the click away):
- item statistics come from the training split's `EventArrays` only: display sets and clicks
  after de-duplication (`ganrl.data.item_stats`), never raw row counts;
- nothing reads the position of an item in its display set or the numeric value of an item
  id (ids are numbered in order of first appearance and the clicked row comes last, so both
  leak the click); features of a display set are permuted with it;
- out of fold, as in the GAN user model (`ganrl.data.item_stats`): the training users are
  dealt by the seed into K folds (`STATISTIC_FOLDS`), and an event of a training user sees the
  item counts and click co-occurrence of the other K - 1 folds only (counts scaled by
  K / (K - 1)); validation and test events see all training users. Nothing a training user or
  her fold did reaches her features, so a training event sees what a test event sees, the
  other users' behaviour. Leave-one-user-out statistics (the user's own display sets and
  clicks subtracted), used before, leak with a learned per-item parameter (the one-hot id of
  W&D-LR, the item embeddings of DFM and W&D-CCF): it learns the item's total count, and the
  total less the leave-user-out count is the user's own click.

A user's history is the clicked items of her earlier events inside the same `EventArrays`, in
order. Shapes: `E` events, `D` the padded display width, `U` users, `F` features.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ganrl.data.dataset import EventArrays, ItemFeatures
from ganrl.data.item_stats import (
    fold_of_users,
    fold_statistics,
    out_of_fold_counts,
    split_statistics,
)

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

# K of the out-of-fold statistics, as the GAN user model's (`ModelConfig.statistic_folds`).
STATISTIC_FOLDS = 5


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


def event_folds(events: EventArrays, train: EventArrays, user_fold: np.ndarray) -> np.ndarray:
    """`[E]` fold (`user_fold [train.n_users]`) of each event's user, -1 for users outside
    the training split."""
    rows = training_rows(events, train)
    return np.where(rows >= 0, np.asarray(user_fold)[np.maximum(rows, 0)], -1)


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
    """Item co-occurrence over the training users' clicks, out of fold for training users.

    sim(i, j) = co(i, j) / sqrt(n_i n_j) for distinct items, where co(i, j) counts the
    training users who clicked both and n_i those who clicked i (cosine similarity of the
    items' user sets; 0 when a count is 0). The score of item j at an event is the sum over
    the user's earlier clicks h (with repeats) of sim(h, j). For an event of a training user,
    co and n count only the users of the other K - 1 folds (the deal of
    `ganrl.data.item_stats.fold_of_users`, as for `PairFeaturizer`'s item counts), so neither
    the user nor her fold reaches the score; other events see all training users. Scaling co
    and n by K / (K - 1), as the item counts are, leaves the cosine unchanged: no scaling.

    Args:
      train: the training split.
      folds: K >= 2.
      seed: seeds the deal of the training users into folds.
      max_block: at most this many floats in one dense block of the computation.
    """

    def __init__(
        self,
        train: EventArrays,
        folds: int = STATISTIC_FOLDS,
        seed: int = 0,
        max_block: int = MAX_BLOCK,
    ):
        self.train = train
        self.clicked = user_item_matrix(train)  # [U, n]
        self.user_fold = fold_of_users(train.n_users, folds, seed)
        self.max_block = max_block
        self.co, self.item_users = self.counts(-1)

    def counts(self, fold: int) -> tuple[sp.csr_matrix, np.ndarray]:
        """(co `[n, n]` with a zero diagonal, n_i `[n]`) over the training users outside fold
        `fold` (-1: all of them)."""
        clicked = self.clicked[self.user_fold != fold]
        co = (clicked.T @ clicked).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        return co, np.asarray(clicked.sum(axis=0)).ravel()

    def scores(self, events: EventArrays) -> np.ndarray:
        """`[E, D]` co-occurrence score of every displayed item (0 on padding)."""
        history = history_click_matrix(events)  # [E, n]
        fold = event_folds(events, self.train, self.user_fold)
        out = np.zeros(events.display.shape)
        # All training users (fold -1), then one fold's complement at a time: at most K + 1
        # co-occurrence matrices, one held at a time.
        for f in np.unique(fold):
            rows = np.flatnonzero(fold == f)
            co, item_users = (self.co, self.item_users) if f < 0 else self.counts(f)
            out[rows] = self.cosine_scores(history[rows], events.display[rows], co, item_users)
        return np.where(events.display_mask, out, 0.0)

    def cosine_scores(
        self, history: sp.csr_matrix, display: np.ndarray, co: sp.csr_matrix, item_users: np.ndarray
    ) -> np.ndarray:
        """`[E, D]` sum over h of history[e, h] co(h, j) / sqrt(n_h n_j), j = display[e, d]."""
        scale = np.divide(
            1.0, np.sqrt(item_users), where=item_users > 0, out=np.zeros(len(item_users))
        )
        a = (history @ sp.diags(scale)).tocsr()  # [E, n]
        block = max(1, self.max_block // max(co.shape[0], 1))
        raw = np.zeros(display.shape)
        for start in range(0, len(display), block):  # blocks of events bound the memory
            part = slice(start, start + block)
            raw[part] = gather((a[part] @ co).toarray(), display[part])
        return raw * scale[display]


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
      train: the training split (its statistics, out of fold for its own users).
      side_features: `[n_items, s]` float32 dense side features of the items, or None.
      folds: K of the out-of-fold statistics (>= 2).
      seed: seeds the deal of the training users into folds.
    """

    train: EventArrays
    side_features: np.ndarray | None = None
    folds: int = STATISTIC_FOLDS
    seed: int = 0

    def __post_init__(self):
        self.user_fold, self.fold_counts = fold_statistics(
            self.train, self.train.n_items, self.folds, self.seed
        )
        shown, clicks = self.fold_counts.sum(axis=(0, 1), dtype=np.float64)
        rate = clicks / shown if shown else 0.5
        self.prior_rate = float(np.clip(rate, 1e-3, 1 - 1e-3))
        self.cooccurrence = Cooccurrence(self.train, self.folds, self.seed)

    @classmethod
    def from_item_features(
        cls, train: EventArrays, item_features: ItemFeatures, seed: int = 0
    ) -> "PairFeaturizer":
        """Uses the items' dense side features (not any `train:` statistics columns); `seed`
        deals the folds."""
        side, _ = split_statistics(item_features)
        return cls(train, side.dense, seed=seed)

    @property
    def names(self) -> tuple[str, ...]:
        extra = 0 if self.side_features is None else self.side_features.shape[1]
        return PAIR_FEATURES + tuple(f"side{i}" for i in range(extra))

    def item_counts(self, events: EventArrays) -> np.ndarray:
        """`[E, D, 2]` training display sets and clicks of each displayed item as the event
        sees them: out of fold for a training user's event, else all training users."""
        fold = event_folds(events, self.train, self.user_fold)
        return out_of_fold_counts(self.fold_counts, fold, events.display)

    def __call__(self, events: EventArrays) -> np.ndarray:
        """`[E, D, F]` float32 features (`names`), 0 on padding."""
        mask = np.asarray(events.display_mask, dtype=bool)
        counts = self.item_counts(events)
        shown, clicks = counts[..., 0], counts[..., 1]
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
