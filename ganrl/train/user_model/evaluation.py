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


def evaluate(
    model: UserModel, events: EventArrays, batch_users: int = 2048, max_events: int = 0
) -> dict[str, float]:
    """Loss (mean NLL per event), per-event log-likelihood, prec@1 and prec@2 of a split."""
    logits_fn = _compiled_logits(model, events.max_display)
    nll, scores, masks, clicks = [], [], [], []
    for start in range(0, events.n_users, batch_users):
        rows = np.arange(start, min(start + batch_users, events.n_users))
        batch = events.flat_batch(rows, max_events or None)
        logits = logits_fn(to_tensors(batch)).numpy()
        target = np.where(batch["clicked_pos"] >= 0, batch["clicked_pos"], logits.shape[-1] - 1)
        log_probs = logits - _logsumexp(logits)
        nll.append(-np.take_along_axis(log_probs, target[:, None], -1)[:, 0])
        scores.append(logits[:, :-1])
        masks.append(batch["display_mask"])
        clicks.append(batch["clicked_pos"])
    nll, scores, masks, clicks = (np.concatenate(x) for x in (nll, scores, masks, clicks))
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
