"""Counting and neighbourhood baselines: chance, most-popular, item kNN and session kNN.

All statistics come from the training split's `EventArrays` (de-duplicated display sets and
clicks). A user's history is her clicked items in earlier events of the scored `EventArrays`.
"""

from __future__ import annotations

import numpy as np

from ganrl.data.dataset import EventArrays, ItemFeatures
from ganrl.data.item_stats import item_statistics
from ganrl.user_model_baselines.base import Scorer
from ganrl.user_model_baselines.features import (
    MAX_BLOCK,
    Cooccurrence,
    gather,
    history_click_matrix,
    training_rows,
    user_item_matrix,
)

# Weight of the normalised popularity (in [0, 1]) added to neighbourhood scores: far below any
# similarity step, it only orders items the neighbourhood scores alike (never the position).
POPULARITY_TIEBREAK = 1e-6


def training_clicks(train: EventArrays) -> np.ndarray:
    """`[n_items]` training clicks per item (display sets after de-duplication)."""
    counts, _ = item_statistics(train)
    return counts[:, 1].astype(np.float64)


class Chance(Scorer):
    """Every item scores 0: with ties shared, prec@k is that of a uniformly random ranking."""

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        pass

    def score(self, events: EventArrays) -> np.ndarray:
        return np.zeros(events.display.shape, dtype=np.float64)


class MostPopular(Scorer):
    """Score = the item's number of training clicks."""

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.clicks = training_clicks(train)

    def score(self, events: EventArrays) -> np.ndarray:
        return self.clicks[events.display]


class ItemKNN(Scorer):
    """Item kNN (co-occurrence): score(j) = sum over the user's earlier clicks h (with
    repeats) of the cosine similarity of distinct items h and j over the training users'
    click sets (`ganrl.user_model_baselines.features.Cooccurrence`, out of fold for training
    users).
    Items the history says nothing about are ordered by popularity (`POPULARITY_TIEBREAK`).
    """

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.cooccurrence = Cooccurrence(train, seed=seed)
        clicks = training_clicks(train)
        self.popularity = clicks / max(clicks.max(), 1.0)

    def score(self, events: EventArrays) -> np.ndarray:
        return (
            self.cooccurrence.scores(events) + POPULARITY_TIEBREAK * self.popularity[events.display]
        )


class SessionKNN(Scorer):
    """Session kNN with co-occurrence (SCKNNC).

    The user's session is the set of items she clicked in earlier events; its neighbours are
    the `neighbours` training users whose click sets are most similar by cosine,
    |s & n| / sqrt(|s| |n|) (never the user herself). score(j) = sum of the similarities of
    the neighbours who clicked j, plus `cooccurrence_weight` times the item-kNN co-occurrence
    score (`ItemKNN`), which also speaks when no neighbour clicked a displayed item.

    Args:
      neighbours: k, the number of neighbour sessions.
      cooccurrence_weight: weight of the item co-occurrence score.
      max_block: at most this many floats in one dense block of the computation.
    """

    def __init__(
        self, neighbours: int = 50, cooccurrence_weight: float = 0.1, max_block: int = MAX_BLOCK
    ):
        self.neighbours = neighbours
        self.cooccurrence_weight = cooccurrence_weight
        self.max_block = max_block

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.sessions = user_item_matrix(train)  # [U, n]
        sizes = np.asarray(self.sessions.sum(axis=1)).ravel()
        self.session_norm = np.sqrt(sizes)
        self.train = train
        self.item_knn = ItemKNN()
        self.item_knn.fit(train, item_features, seed)

    def neighbour_scores(self, events: EventArrays) -> np.ndarray:
        """`[E, D]` summed similarity of the neighbour sessions that clicked each item."""
        history = history_click_matrix(events)
        history.data[:] = 1.0  # click sets
        history_norm = np.sqrt(np.asarray(history.sum(axis=1)).ravel())
        own_row = training_rows(events, self.train)
        n_sessions, n_items = self.sessions.shape
        block = max(1, self.max_block // max(n_sessions, n_items, 1))
        out = np.zeros(events.display.shape, dtype=np.float64)
        for start in range(0, events.n_events, block):  # blocks of events bound the memory
            rows = slice(start, start + block)
            overlap = (history[rows] @ self.sessions.T).toarray()  # [b, U]
            norm = history_norm[rows, None] * self.session_norm[None, :]
            sim = np.divide(overlap, norm, out=np.zeros_like(overlap), where=norm > 0)
            own = own_row[rows]
            sim[np.flatnonzero(own >= 0), own[own >= 0]] = 0.0
            if self.neighbours < n_sessions:
                # Below the k-th largest similarity a session is no neighbour (ties at the
                # k-th are all kept: no order decides between them).
                kth = np.partition(sim, n_sessions - self.neighbours, axis=1)[
                    :, n_sessions - self.neighbours
                ]
                sim = np.where(sim >= kth[:, None], sim, 0.0)
            item_scores = np.asarray(self.sessions.T @ sim.T).T  # [b, n]
            out[rows] = gather(item_scores, events.display[rows])
        return out

    def score(self, events: EventArrays) -> np.ndarray:
        return (
            self.neighbour_scores(events)
            + self.cooccurrence_weight * self.item_knn.cooccurrence.scores(events)
            + POPULARITY_TIEBREAK * self.item_knn.popularity[events.display]
        )
