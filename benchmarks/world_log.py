"""What the independent worlds of `benchmarks/` share: a softmax, and writing a world's log in
the released format with the prec@1 limits measured while it was drawn."""

from __future__ import annotations

import json
import os

import numpy as np

from ganrl.data.safe_io import atomic_open
from ganrl.data.synthetic import write_released_log


def log_softmax(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=-1, keepdims=True))


def write_log_and_limits(
    out: str, name: str, rows: list, split: np.ndarray, hits: dict[str, int]
) -> dict:
    """Writes `out/NAME.txt` from `rows` (per step of the drawing: the users that step, their
    display sets `[n, D]`, masks and clicked positions, -1 for none) with each user's events in
    time order, and `out/NAME-limits.json`: each key of `hits` but "clicks" as a prec@1 over
    the test users' `hits["clicks"]` clicked events. Returns the limits."""
    user_of = np.concatenate([r[0] for r in rows])
    order = np.argsort(user_of, kind="stable")
    display, mask, clicked = (np.concatenate([r[i] for r in rows])[order] for i in (1, 2, 3))
    os.makedirs(out, exist_ok=True)
    write_released_log(
        os.path.join(out, f"{name}.txt"), display, mask, clicked, user_of[order], split
    )
    limits = {
        f"{key}_prec1": count / max(hits["clicks"], 1)
        for key, count in hits.items()
        if key != "clicks"
    }
    limits["test_clicks"] = hits["clicks"]
    with atomic_open(os.path.join(out, f"{name}-limits.json"), "w") as f:
        json.dump(limits, f, indent=2)
    return limits
