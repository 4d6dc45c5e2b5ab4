"""Item statistics from the training users' logs: what lets a user model rank items it has not
seen clicked (the one-hot identity alone says nothing about them).

Computed from the training split's `EventArrays` only (already de-duplicated: display sets and
clicks, never raw rows, whose counts leak the click in the released files, nor row order), per
item:
- `train:display_sets`: in how many training display sets it was shown;
- `train:clicks`: how many training display sets ended in a click on it.

They are kept as counts: the user model turns them into features
(`ganrl.user_model.context.statistic_features`: log counts, a click rate smoothed towards the
overall rate with a Beta prior, so an item seen once is no certainty, and an unseen flag). A
test event sees the counts of the training users, none of them its own; a training event must
see the same kind of counts, so on a training batch the model replaces them with out-of-fold
counts (`fold_statistics`): the training users are dealt into K folds and an event sees the
counts of the other K - 1 folds, scaled by K / (K - 1). Nothing a training user did then
reaches her own features. Leave-one-user-out counts (subtracting the user's own events) are
not enough: the identity embedding learns each item's total count, and the total less the
leave-user-out count is the user's own click.

A run stores them as extra dense columns (named `train:...`) of its `item_features.pkl`, so
`load_user_model` rebuilds the model without the data. Recency is not among them: `EventArrays`
carry no timestamps, and a row-order proxy (the last training event showing the item) did not
help a conditional logit on yelp, tb or rsc (docs/user_model_generalisation.md).
"""

from __future__ import annotations

import numpy as np

from ganrl.data.dataset import FEATURES_FORMAT, EventArrays, ItemFeatures

STAT_PREFIX = "train:"
COLUMNS = (STAT_PREFIX + "display_sets", STAT_PREFIX + "clicks")


def item_statistics(
    train: EventArrays, n_items: int | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-item counts over the training users' display sets.

    Args:
      train: the training split (an item appears at most once in a display set).
      n_items: catalogue size (default `train.n_items`).

    Returns:
      (`[n_items, 2]` float32 counts, their names `COLUMNS`).
    """
    n = train.n_items if n_items is None else n_items
    shown = np.asarray(train.display)[np.asarray(train.display_mask, dtype=bool)]
    clicked = train.clicked_item
    counts = np.stack(
        [np.bincount(shown, minlength=n), np.bincount(clicked[clicked >= 0], minlength=n)], axis=1
    )
    return counts.astype(np.float32), COLUMNS


def with_statistics(features: ItemFeatures, train: EventArrays) -> ItemFeatures:
    """`features` with the training statistics appended as dense columns (older ones
    replaced)."""
    side, _ = split_statistics(features)
    counts, columns = item_statistics(train, features.n_items)
    dense = counts if side.dense is None else np.concatenate([side.dense, counts], axis=1)
    return ItemFeatures(
        n_items=features.n_items,
        identity=features.identity,
        dense=dense,
        columns=tuple(side.columns) + columns,
    )


def split_statistics(features: ItemFeatures) -> tuple[ItemFeatures, np.ndarray | None]:
    """Separates the side features from the training statistics.

    Returns:
      (the features without `train:` columns, `[n_items, 2]` counts in `COLUMNS` order, or
      None when `features` carry none).
    """
    columns = list(features.columns)
    is_stat = [c.startswith(STAT_PREFIX) for c in columns]
    if features.dense is None or not any(is_stat):
        return features, None
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"item features have statistics columns but lack {missing}")
    counts = features.dense[:, [columns.index(c) for c in COLUMNS]]
    keep = [i for i, stat in enumerate(is_stat) if not stat]
    side = ItemFeatures(
        n_items=features.n_items,
        identity=features.identity,
        dense=features.dense[:, keep] if keep else None,
        columns=tuple(columns[i] for i in keep),
    )
    return side, counts


def features_pickle_object(features: ItemFeatures) -> object:
    """The pickle form of `features` that keeps the statistics' column names (the compact dict
    whenever there are statistics; `ItemFeatures.to_pickle_object` otherwise)."""
    if split_statistics(features)[1] is None:
        return features.to_pickle_object()
    return {
        "format": FEATURES_FORMAT,
        "n_items": int(features.n_items),
        "identity": bool(features.identity),
        "dense": features.dense.astype(np.float32),
        "columns": list(features.columns),
    }


def fold_of_users(n_users: int, folds: int, seed: int) -> np.ndarray:
    """`[n_users]` int32: a seeded deal of the training users into `folds` folds of equal
    size (within one user)."""
    order = np.random.default_rng([seed, 1729]).permutation(n_users)
    fold = np.empty(n_users, dtype=np.int32)
    fold[order] = np.arange(n_users) % folds
    return fold


def fold_statistics(
    train: EventArrays, n_items: int, folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's share of the training counts, for out-of-fold statistics.

    Args:
      train: the training split.
      n_items: catalogue size.
      folds: K >= 2.
      seed: seeds the deal of users into folds.

    Returns:
      (`[train.n_users]` int32 fold of each user row, `[K, n_items, 2]` float32 counts of
      each fold's users, in `COLUMNS` order; they sum over folds to `item_statistics`).
    """
    if folds < 2:
        raise ValueError(f"statistic_folds={folds}: out-of-fold statistics need at least 2")
    fold = fold_of_users(train.n_users, folds, seed)
    event_fold = np.repeat(fold, np.diff(np.asarray(train.event_offsets)))
    mask = np.asarray(train.display_mask, dtype=bool)
    shown = np.asarray(train.display)[mask]
    shown_fold = np.broadcast_to(event_fold[:, None], mask.shape)[mask]
    clicked = np.asarray(train.clicked_item)
    has_click = clicked >= 0
    size = folds * n_items
    counts = np.stack(
        [
            np.bincount(shown_fold * n_items + shown, minlength=size),
            np.bincount(event_fold[has_click] * n_items + clicked[has_click], minlength=size),
        ],
        axis=1,
    )
    return fold, counts.reshape(folds, n_items, 2).astype(np.float32)


def out_of_fold_counts(fold_counts: np.ndarray, fold: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The counts of `items` that events see, in numpy (`UserModel` computes the same for a
    training batch in TensorFlow): an event of a training user of fold f sees the counts of
    the other K - 1 folds scaled by K / (K - 1); any other event sees all training users.

    Args:
      fold_counts: `[K, n_items, 2]` counts of each fold (`fold_statistics`).
      fold: `[E]` int fold of each event's user, -1 for users outside the training split.
      items: `[E, D]` item ids.

    Returns:
      `[E, D, 2]` float64 counts in `COLUMNS` order.
    """
    folds = len(fold_counts)
    total = fold_counts.sum(axis=0, dtype=np.float64)[items]
    own_fold = fold_counts[np.maximum(fold, 0)[:, None], items]
    out_of_fold = (total - own_fold) * (folds / (folds - 1))
    return np.where((np.asarray(fold) >= 0)[:, None, None], out_of_fold, total)
