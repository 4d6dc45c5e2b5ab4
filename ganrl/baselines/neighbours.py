"""Counting and neighbourhood baselines: chance, most-popular, item kNN and session kNN.

All statistics come from the training split's `EventArrays` (de-duplicated display sets and
clicks). A user's history is her clicked items in earlier events of the scored `EventArrays`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ganrl.baselines.base import Scorer
from ganrl.baselines.features import event_users, history_click_matrix, user_item_matrix
from ganrl.data.dataset import EventArrays, ItemFeatures
from ganrl.data.item_stats import item_statistics

# Weight of the normalised popularity (in [0, 1]) added to neighbourhood scores: far below any
# similarity step, it only orders items the neighbourhood scores alike (never the position).
POPULARITY_TIEBREAK = 1e-6


def gather_scores(item_scores: sp.spmatrix | np.ndarray, display: np.ndarray) -> np.ndarray:
    """`[E, D]` entries (e, display[e, d]) of `item_scores [E, n_items]` (sparse or dense)."""
    rows = np.broadcast_to(np.arange(display.shape[0])[:, None], display.shape).ravel()
    if sp.issparse(item_scores):
        values = np.asarray(item_scores.tocsr()[rows, display.ravel()]).ravel()
    else:
        values = item_scores[rows, display.ravel()]
    return values.reshape(display.shape).astype(np.float64)


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


def cosine_item_similarity(clicked: sp.csr_matrix) -> sp.csr_matrix:
    """`[n, n]` cosine similarity of distinct items over users: co(i, j) / sqrt(n_i n_j),
    where co(i, j) counts the users who clicked both and n_i those who clicked i; the diagonal
    is 0 (an item is not its own neighbour).

    Args:
      clicked: `[U, n]` binary user-item clicks.
    """
    co = (clicked.T @ clicked).tocsr()
    counts = co.diagonal()
    inv = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    similarity = (sp.diags(inv) @ co @ sp.diags(inv)).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return similarity


class ItemKNN(Scorer):
    """Item kNN (co-occurrence): score(j) = sum over the user's earlier clicks i (with
    repeats) of cos(i, j), the cosine similarity of distinct items over the training users'
    click sets (`cosine_item_similarity`). Items the history says nothing about are ordered
    by popularity (`POPULARITY_TIEBREAK`).

    A training user scored by this model meets her own clicks in the similarities.
    """

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.similarity = cosine_item_similarity(user_item_matrix(train))
        clicks = training_clicks(train)
        self.popularity = clicks / max(clicks.max(), 1.0)

    def similarity_scores(self, events: EventArrays) -> np.ndarray:
        """`[E, D]` summed similarity of each displayed item to the user's earlier clicks."""
        return gather_scores(history_click_matrix(events) @ self.similarity, events.display)

    def score(self, events: EventArrays) -> np.ndarray:
        return (self.similarity_scores(events)
                + POPULARITY_TIEBREAK * self.popularity[events.display])


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

    def __init__(self, neighbours: int = 50, cooccurrence_weight: float = 0.1,
                 max_block: int = 4_000_000):
        self.neighbours = neighbours
        self.cooccurrence_weight = cooccurrence_weight
        self.max_block = max_block

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.sessions = user_item_matrix(train)                               # [U, n]
        sizes = np.asarray(self.sessions.sum(axis=1)).ravel()
        self.session_norm = np.sqrt(sizes)
        self.train_row = {u: row for row, u in enumerate(np.asarray(train.user_ids).tolist())}
        self.item_knn = ItemKNN()
        self.item_knn.fit(train, item_features, seed)

    def neighbour_scores(self, events: EventArrays) -> np.ndarray:
        """`[E, D]` summed similarity of the neighbour sessions that clicked each item."""
        history = history_click_matrix(events)
        history.data[:] = 1.0                                                 # click sets
        history_norm = np.sqrt(np.asarray(history.sum(axis=1)).ravel())
        own_row = np.array([self.train_row.get(u, -1)
                            for u in np.asarray(events.user_ids).tolist()])[event_users(events)]
        n_sessions, n_items = self.sessions.shape
        block = max(1, self.max_block // max(n_sessions, n_items, 1))
        out = np.zeros(events.display.shape, dtype=np.float64)
        for start in range(0, events.n_events, block):  # blocks of events bound the memory
            rows = slice(start, start + block)
            overlap = (history[rows] @ self.sessions.T).toarray()            # [b, U]
            norm = history_norm[rows, None] * self.session_norm[None, :]
            sim = np.divide(overlap, norm, out=np.zeros_like(overlap), where=norm > 0)
            own = own_row[rows]
            sim[np.flatnonzero(own >= 0), own[own >= 0]] = 0.0
            if self.neighbours < n_sessions:
                # Below the k-th largest similarity a session is no neighbour (ties at the
                # k-th are all kept: no order decides between them).
                kth = np.partition(sim, n_sessions - self.neighbours, axis=1)[
                    :, n_sessions - self.neighbours]
                sim = np.where(sim >= kth[:, None], sim, 0.0)
            item_scores = np.asarray(self.sessions.T @ sim.T).T               # [b, n]
            out[rows] = gather_scores(item_scores, events.display[rows])
        return out

    def score(self, events: EventArrays) -> np.ndarray:
        return (self.neighbour_scores(events)
                + self.cooccurrence_weight * self.item_knn.similarity_scores(events)
                + POPULARITY_TIEBREAK * self.item_knn.popularity[events.display])
