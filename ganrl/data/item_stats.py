"""Item statistics from the training users' logs: what lets a user model rank items it has not
seen clicked (the one-hot identity alone says nothing about them).

Computed from the training split's `EventArrays` only (already de-duplicated: display sets and
clicks, never raw rows or row order), per item:
- `log_displays`: log(1 + number of training display sets showing it);
- `log_clicks`: log(1 + number of training clicks on it);
- `smoothed_ctr`: (clicks + a * p) / (displays + a), a = 5, p the overall clicks per display,
  so an item seen once is no certainty and an unseen item gets the prior;
- `seen`: 1 if it was displayed in training at all;
- `ctr_lift`: smoothed_ctr / p - 1.
"""

from __future__ import annotations

import numpy as np

from ganrl.data.dataset import EventArrays, ItemFeatures

PRIOR_STRENGTH = 5.0
COLUMNS = ("log_displays", "log_clicks", "smoothed_ctr", "seen", "ctr_lift")


def item_statistics(train: EventArrays) -> np.ndarray:
    """`[n_items, 5]` float32 statistics (see the module docstring)."""
    n = train.n_items
    shown = np.asarray(train.display)[np.asarray(train.display_mask)]
    displays = np.bincount(shown, minlength=n).astype(np.float64)
    clicked = train.clicked_item
    clicks = np.bincount(clicked[clicked >= 0], minlength=n).astype(np.float64)
    prior = clicks.sum() / max(displays.sum(), 1.0)
    ctr = (clicks + PRIOR_STRENGTH * prior) / (displays + PRIOR_STRENGTH)
    return np.stack([np.log1p(displays), np.log1p(clicks), ctr, (displays > 0).astype(float),
                     ctr / max(prior, 1e-9) - 1.0], axis=1).astype(np.float32)


def with_statistics(features: ItemFeatures, train: EventArrays) -> ItemFeatures:
    """`features` with the training statistics appended as dense columns."""
    stats = item_statistics(train)
    dense = stats if features.dense is None else np.concatenate([features.dense, stats], 1)
    return ItemFeatures(n_items=features.n_items, identity=features.identity, dense=dense,
                        columns=tuple(features.columns) + COLUMNS)
