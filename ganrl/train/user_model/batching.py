"""Training batches: the users of each iteration, flat batches as tensors, and the windows of
iterations that one `tf.function` call trains (stacked, per replica, as a `tf.data` pipeline)."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ganrl.data.dataset import EventArrays

# The keys of a flat batch whose first axis is its events (N); the others are per user (B).
EVENT_KEYS = (
    "display",
    "display_mask",
    "clicked_pos",
    "event_mask",
    "event_user",
    "clicks_before",
)
BATCH_KEYS = EVENT_KEYS + ("click_items", "click_mask", "user_row")


def batch_signature(max_display: int) -> dict:
    """`tf.function` signature of a flat batch: N, B and C vary, D is fixed, so nothing
    retraces."""
    return {
        "display": tf.TensorSpec([None, max_display], tf.int32),
        "display_mask": tf.TensorSpec([None, max_display], tf.bool),
        "clicked_pos": tf.TensorSpec([None], tf.int32),
        "event_mask": tf.TensorSpec([None], tf.bool),
        "event_user": tf.TensorSpec([None], tf.int32),
        "clicks_before": tf.TensorSpec([None], tf.int32),
        "click_items": tf.TensorSpec([None, None], tf.int32),
        "click_mask": tf.TensorSpec([None, None], tf.bool),
        "user_row": tf.TensorSpec([None], tf.int32),
    }


def to_tensors(batch: dict) -> dict:
    return {k: tf.convert_to_tensor(batch[k]) for k in BATCH_KEYS}


def epoch_order(n_users: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled user rows of one epoch: a function of (seed, epoch) only, so resuming at
    any iteration replays the same data order."""
    return np.random.default_rng([seed, epoch]).permutation(n_users)


def batch_rows(n_users: int, batch_size: int, seed: int, iteration: int) -> np.ndarray:
    """User rows of training batch `iteration` (epochs of ceil(n_users / batch_size) batches)."""
    per_epoch = max(1, math.ceil(n_users / batch_size))
    epoch, index = divmod(iteration, per_epoch)
    return epoch_order(n_users, seed, epoch)[index * batch_size : (index + 1) * batch_size]


def trim_padding(batch: dict) -> dict:
    """Drops the padding that stacking a window added beyond this batch's own events and
    clicks (`stack_batches` pads every batch of a window to the window's largest).

    Real events come first and each user's clicks are a prefix of its row, so the batch
    keeps its first `sum(event_mask)` events and `max(clicks)` click columns. The LSTM then
    runs over the batch's own longest history, not the window's, and the utility MLP over
    its own events: same losses and gradients, less work (on MovieLens, where a few users
    have 700 clicks, most batches run a third of the steps).
    """
    n = tf.reduce_sum(tf.cast(batch["event_mask"], tf.int32))
    c = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(batch["click_mask"], tf.int32), 1)), 1)
    out = {key: batch[key][:n] for key in EVENT_KEYS}
    out["click_items"] = batch["click_items"][:, :c]
    out["click_mask"] = batch["click_mask"][:, :c]
    out["user_row"] = batch["user_row"]
    return out


def stack_batches(batches: list[dict]) -> dict:
    """Pads flat batches to a common N (masked events), B and C (empty users) and stacks them
    into `[K, ...]` arrays."""
    sizes = {k: np.max([x[k].shape for x in batches], axis=0) for k in BATCH_KEYS}
    out = {}
    for key in BATCH_KEYS:
        fill = -1 if key == "clicked_pos" else 0
        out[key] = np.stack(
            [
                np.pad(
                    x[key],
                    [(0, n - d) for n, d in zip(sizes[key], x[key].shape)],
                    constant_values=fill,
                )
                for x in batches
            ]
        )
    return out


def replica_windows(
    events: EventArrays, batches_rows: list[np.ndarray], num_replicas: int, max_events: int | None
) -> tuple[dict, np.ndarray]:
    """Splits each global batch's users over the replicas and stacks them.

    Returns `[R, K, ...]` arrays (replica r's K batches at [r]) padded to common shapes, and
    the `[K]` event counts of the global batches.
    """
    per_step = []
    for rows in batches_rows:
        per_step.append(
            [events.flat_batch(part, max_events) for part in np.array_split(rows, num_replicas)]
        )
    counts = np.array(
        [sum(len(b["clicked_pos"]) for b in step) for step in per_step], dtype=np.float32
    )
    flat = stack_batches([b for step in per_step for b in step])  # [K * R, ...]
    k = len(per_step)
    stacked = {
        key: np.swapaxes(v.reshape((k, num_replicas) + v.shape[1:]), 0, 1)
        for key, v in flat.items()
    }
    return stacked, counts


def evaluation_schedule(
    start: int, num_itrs: int, eval_every: int, steps_per_call: int
) -> list[list[tuple[int, int]]]:
    """The training calls from `start` on, grouped by the evaluation that follows them: each
    group's calls cover the iterations up to the next multiple of `eval_every` (or
    `num_itrs`), as (first, last + 1) ranges of at most `steps_per_call` iterations."""
    schedule, it = [], start
    while it < num_itrs:
        end = min((it // eval_every + 1) * eval_every, num_itrs)
        schedule.append([(s, min(s + steps_per_call, end)) for s in range(it, end, steps_per_call)])
        it = end
    return schedule


def window_bounds(
    start: int, num_itrs: int, eval_every: int, steps_per_call: int
) -> list[tuple[int, int]]:
    """The (first, last + 1) iterations of each training call from `start` on, in order
    (`evaluation_schedule` without its grouping)."""
    return [
        bounds
        for calls in evaluation_schedule(start, num_itrs, eval_every, steps_per_call)
        for bounds in calls
    ]


def window_dataset(
    events: EventArrays,
    bounds: list[tuple[int, int]],
    batch_size: int,
    seed: int,
    num_replicas: int,
    max_events: int | None,
) -> tf.data.Dataset:
    """The training windows as a `tf.data` pipeline: element i holds the `[R, K, ...]` stacked
    batches of `bounds[i]` (`replica_windows`) and their `[K]` event counts. Built from the
    memory-mapped arrays one window ahead of the training (`prefetch`), so reading and padding
    the next window overlaps the current one's steps and memory stays that of two windows."""
    spec = batch_signature(events.max_display)

    def windows():
        for first, last in bounds:
            rows = [batch_rows(events.n_users, batch_size, seed, i) for i in range(first, last)]
            yield replica_windows(events, rows, num_replicas, max_events)

    signature = (
        {k: tf.TensorSpec([None, None, *spec[k].shape], spec[k].dtype) for k in BATCH_KEYS},
        tf.TensorSpec([None], tf.float32),
    )
    return tf.data.Dataset.from_generator(windows, output_signature=signature).prefetch(1)
