"""One `evaluate(model, split) -> dict`: loss, log-likelihood and prec@k of a split."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from ganrl.data.dataset import EventArrays
from ganrl.metrics import precision_at_k
from ganrl.train.user_model.batching import batch_signature, to_tensors
from ganrl.user_model.choice_model import ChoiceModel
from ganrl.user_model.model import UserModel


def event_predictions(
    model: UserModel, events: EventArrays, batch_users: int = 2048, max_events: int = 0
) -> dict[str, np.ndarray]:
    """Per event of a split, user by user in order: `nll [E]` (the negative log-probability
    of the observed choice), `scores [E, D]` (the displayed items' logits), `display_mask
    [E, D]`, `clicked_pos [E]` and `step [E]` (the event's index within its user's kept
    events)."""
    logits_fn = _compiled_logits(model, events.max_display)
    parts = {key: [] for key in ("nll", "scores", "display_mask", "clicked_pos", "step")}
    for start in range(0, events.n_users, batch_users):
        rows = np.arange(start, min(start + batch_users, events.n_users))
        batch = events.flat_batch(rows, max_events or None)
        logits = logits_fn(to_tensors(batch)).numpy()
        target = np.where(batch["clicked_pos"] >= 0, batch["clicked_pos"], logits.shape[-1] - 1)
        log_probs = logits - _logsumexp(logits)
        users = np.asarray(batch["event_user"])  # rows of `rows`, each user's events in order
        lengths = np.bincount(users, minlength=len(rows))
        offsets = np.cumsum(lengths) - lengths
        parts["nll"].append(-np.take_along_axis(log_probs, target[:, None], -1)[:, 0])
        parts["scores"].append(logits[:, :-1])
        parts["display_mask"].append(batch["display_mask"])
        parts["clicked_pos"].append(batch["clicked_pos"])
        parts["step"].append(np.arange(len(users)) - offsets[users])
    return {key: np.concatenate(value) for key, value in parts.items()}


def evaluate(
    model: UserModel, events: EventArrays, batch_users: int = 2048, max_events: int = 0
) -> dict[str, float]:
    """Loss (mean NLL per event), per-event log-likelihood, prec@1 and prec@2 of a split."""
    predicted = event_predictions(model, events, batch_users, max_events)
    nll, scores, masks, clicks = (
        predicted[key] for key in ("nll", "scores", "display_mask", "clicked_pos")
    )
    loss = float(nll.mean()) if len(nll) else float("nan")
    has_click = bool(np.any(clicks >= 0))
    return {
        "loss": loss,
        "loglik": -loss,
        "prec1": float(np.nanmean(precision_at_k(scores, masks, clicks, 1)))
        if has_click
        else float("nan"),
        "prec2": float(np.nanmean(precision_at_k(scores, masks, clicks, 2)))
        if has_click
        else float("nan"),
        "events": int(len(nll)),
        "clicked_events": int(np.sum(clicks >= 0)),
    }


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _compiled_logits(model: UserModel, max_display: int) -> Callable:
    cache = model.__dict__.setdefault("_ganrl_logits_fns", {})
    if max_display not in cache:
        cache[max_display] = tf.function(
            ChoiceModel(model).event_logits, input_signature=[batch_signature(max_display)]
        )
    return cache[max_display]
