"""Training a user model, room by room.

- `config`: `TrainConfig` (everything a run depends on) and the divergence check of its curves;
- `batching`: the users of each iteration, flat batches as tensors, and the windows of
  iterations one `tf.function` call trains;
- `steps`: the MLE and L2 adversarial training steps and the window function;
- `evaluation`: `evaluate(model, split) -> dict`;
- `runner`: `UserModelRunner`, which owns the run folder, checkpoints, curves and results.
"""

from ganrl.train.user_model.batching import (
    BATCH_KEYS,
    batch_rows,
    batch_signature,
    epoch_order,
    evaluation_schedule,
    replica_windows,
    stack_batches,
    to_tensors,
    trim_padding,
    window_bounds,
    window_dataset,
)
from ganrl.train.user_model.config import (
    ARCHITECTURE_FIELDS,
    BEST_METRICS,
    CURVE_FIELDS,
    ITEM_FEATURES,
    REGULARIZERS,
    RERUN_MAY_CHANGE,
    TrainConfig,
    TrainingDivergedError,
    divergence,
)
from ganrl.train.user_model.evaluation import evaluate, event_predictions
from ganrl.train.user_model.runner import UserModelRunner, in_cluster, is_chief, peak_rss_mb
from ganrl.train.user_model.steps import make_entropy_step, make_l2_step, make_window_fn

__all__ = [
    "ARCHITECTURE_FIELDS",
    "BATCH_KEYS",
    "BEST_METRICS",
    "CURVE_FIELDS",
    "ITEM_FEATURES",
    "REGULARIZERS",
    "RERUN_MAY_CHANGE",
    "TrainConfig",
    "TrainingDivergedError",
    "UserModelRunner",
    "batch_rows",
    "batch_signature",
    "divergence",
    "epoch_order",
    "evaluate",
    "event_predictions",
    "evaluation_schedule",
    "in_cluster",
    "is_chief",
    "make_entropy_step",
    "make_l2_step",
    "make_window_fn",
    "peak_rss_mb",
    "replica_windows",
    "stack_batches",
    "to_tensors",
    "trim_padding",
    "window_bounds",
    "window_dataset",
]
