"""A starting item embedding from the training users' co-clicks.

Items one user clicks tend to be alike; the identity embedding of a log known by item ids
alone must otherwise find that from the choices themselves, which a log of a few clicks per
user and thousands of items does poorly (it overfits within a few epochs). The start here is
the truncated SVD of the positive pointwise mutual information (PPMI) of the training users'
co-click counts: items clicked by the same users start close. Training then moves it as any
other weight; it is a starting point, not a feature, so it adds no input that could reveal a
training event's click.

  table = coclick_embeddings(splits["train"], n_items, dim=32)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from ganrl.data.dataset import EventArrays


def user_item_clicks(events: EventArrays, n_items: int, max_items: int) -> sp.csr_matrix:
    """`[users, n_items]` 0/1: the distinct items each user clicked, at most her `max_items`
    most recently clicked ones."""
    per_user = np.diff(events.event_offsets)
    event_user = np.repeat(np.arange(events.n_users), per_user)
    rows = np.nonzero(events.clicked_pos >= 0)[0]
    users = event_user[rows]
    items = events.display[rows, events.clicked_pos[rows]].astype(np.int64)
    # The newest event of each (user, item), then each user's items newest first.
    key = users.astype(np.int64) * n_items + items
    order = np.lexsort((-rows, key))  # by (user, item), the newest event first
    newest = order[np.r_[True, key[order][1:] != key[order][:-1]]] if len(key) else order
    users, items, last = users[newest], items[newest], rows[newest]
    newest_first = np.lexsort((-last, users))
    users, items = users[newest_first], items[newest_first]
    rank = np.arange(len(users)) - np.searchsorted(users, users, side="left")
    users, items = users[rank < max_items], items[rank < max_items]
    return sp.csr_matrix(
        (np.ones(len(users), np.float64), (users, items)), shape=(events.n_users, n_items)
    )


def ppmi(clicks: sp.csr_matrix) -> sp.csr_matrix:
    """`[n_items, n_items]` positive PMI of co-click counts (two items clicked by one user),
    the diagonal left out."""
    counts = (clicks.T @ clicks).tocoo()
    off = counts.row != counts.col
    rows, cols, values = counts.row[off], counts.col[off], counts.data[off]
    n_items = clicks.shape[1]
    if not len(values):
        return sp.csr_matrix((n_items, n_items))
    totals = np.bincount(rows, weights=values, minlength=n_items)
    pmi = np.log(values * values.sum() / (totals[rows] * totals[cols]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (rows[keep], cols[keep])), shape=(n_items, n_items))


def coclick_embeddings(
    train: EventArrays,
    n_items: int,
    dim: int,
    scale: float = 0.05,
    seed: int = 0,
    max_items: int = 50,
) -> np.ndarray:
    """`[n_items, dim]` float32 starting embeddings: U sqrt(S) of the rank-`dim` SVD of the
    training users' co-click PPMI, scaled to standard deviation `scale` (the random start's).
    Items without a positive PMI with any other item, and the columns beyond the matrix's
    rank, start random N(0, scale^2), as without this start.

    Args:
      train: the training users' events.
      n_items: catalogue size.
      dim: embedding width.
      scale: the table's standard deviation.
      seed: seeds the SVD's random projection and the random rows.
      max_items: each user contributes her most recently clicked distinct items, at most
        this many (bounds the co-click pairs of a heavy user at `max_items`^2).
    """
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, scale, (n_items, dim))
    matrix = ppmi(user_item_clicks(train, n_items, max_items))
    known = np.asarray(matrix.getnnz(axis=1)) > 0
    rank = min(dim, n_items - 1, int(known.sum()) - 1)
    if rank < 1:
        return table.astype(np.float32)
    u, s, _ = randomized_svd(matrix, rank, random_state=seed)
    part = (u * np.sqrt(s))[known]
    std = part.std()
    if std > 0:
        table[np.ix_(known, np.arange(rank))] = part * (scale / std)
    return table.astype(np.float32)
