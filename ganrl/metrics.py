"""Ranking metrics over display sets, shared by the user model and every baseline.

prec@k asks whether the clicked item is among the k items of its display set with the highest
score. Ties never go by position (the released files put the clicked row last): when the
clicked item ties with others across the k-th place, it earns the fraction of the tied places
that fall inside the top k.
"""

from __future__ import annotations

import numpy as np


def precision_at_k(
    scores: np.ndarray, display_mask: np.ndarray, clicked_pos: np.ndarray, k: int
) -> np.ndarray:
    """Per-event prec@k with fractional ties.

    Args:
      scores: `[E, D]` float scores of the displayed items (padding ignored).
      display_mask: `[E, D]` bool, True on real items.
      clicked_pos: `[E]` position of the clicked item; events with -1 (no click) give NaN.
      k: the cut-off.

    Returns:
      `[E]` float64 in [0, 1]: with g items scored strictly above the clicked one and m items
      (the clicked one included) tied with it, the clicked item occupies places g+1..g+m, of
      which max(0, min(k, g+m) - g) fall in the top k; each place is equally likely, so the
      value is that count divided by m.
    """
    scores = np.asarray(scores, dtype=np.float64)
    display_mask = np.asarray(display_mask, dtype=bool)
    clicked_pos = np.asarray(clicked_pos)
    has_click = clicked_pos >= 0
    rows = np.arange(len(clicked_pos))
    clicked_score = scores[rows, np.maximum(clicked_pos, 0)]
    greater = ((scores > clicked_score[:, None]) & display_mask).sum(axis=1)
    tied = ((scores == clicked_score[:, None]) & display_mask).sum(axis=1)
    inside = np.clip(k - greater, 0, tied)
    result = inside / np.maximum(tied, 1)
    return np.where(has_click, result, np.nan)


def ranking_summary(
    scores: np.ndarray, display_mask: np.ndarray, clicked_pos: np.ndarray
) -> dict[str, float]:
    """Mean prec@1 and prec@2 over the events that have a click."""
    out = {}
    for k in (1, 2):
        values = precision_at_k(scores, display_mask, clicked_pos, k)
        out[f"prec{k}"] = float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")
    return out
