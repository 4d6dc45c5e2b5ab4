"""The statistics of a converted dataset, written as `NAME-stats.json`.

Keys (all counts after de-duplication unless said otherwise):
- `rows`: raw data rows of the input (for MovieLens: ratings);
- `rows_kept`: displayed rows after dropping duplicate rows and, where an item appears twice in
  one display set, keeping its clicked row;
- `users`, `items` (catalogue size), `events` (display sets), `clicks` (display sets with a
  click), `no_clicks` (display sets without one);
- `display_size`: `mean`, `min`, `max` items per display set;
- `single_item_sets`: display sets of one item (a click there is no choice);
- `split`: users in `train`, `vali`, `test`;
- `feature_dim`: width of an item's feature vector (one-hot part included).
Nothing here counts raw rows per item: the released files repeat clicked rows.
"""

from __future__ import annotations

import numpy as np

from ganrl.data.dataset import SPLIT_NAMES, EventArrays

STATS_KEYS = (
    "rows",
    "rows_kept",
    "users",
    "items",
    "events",
    "clicks",
    "no_clicks",
    "display_size",
    "single_item_sets",
    "split",
    "feature_dim",
)


def dataset_statistics(
    events: EventArrays,
    rows: int,
    rows_kept: int,
    split_users: tuple[list, list, list],
    feature_dim: int,
) -> dict:
    """The statistics (see the module docstring) of a dataset's events.

    Args:
      events: every user's events; `display_mask [E, D]`, `clicked_pos [E]`.
      rows: raw input rows.
      rows_kept: rows after de-duplication.
      split_users: train, validation and test user lists.
      feature_dim: item feature width.
    """
    sizes = np.asarray(events.display_mask).sum(axis=1)
    clicks = int((np.asarray(events.clicked_pos) >= 0).sum())
    return {
        "rows": int(rows),
        "rows_kept": int(rows_kept),
        "users": int(events.n_users),
        "items": int(events.n_items),
        "events": int(events.n_events),
        "clicks": clicks,
        "no_clicks": int(events.n_events - clicks),
        "display_size": {
            "mean": float(sizes.mean()) if len(sizes) else 0.0,
            "min": int(sizes.min()) if len(sizes) else 0,
            "max": int(sizes.max()) if len(sizes) else 0,
        },
        "single_item_sets": int((sizes == 1).sum()),
        "split": {name: len(users) for name, users in zip(SPLIT_NAMES, split_users)},
        "feature_dim": int(feature_dim),
    }
