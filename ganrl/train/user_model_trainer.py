"""Training loop of the user model: entropy (MLE) pre-training and L2 adversarial fine-tuning.

`UserModelRunner` owns everything that touches files: the run folder (`save_dir`), resumable
checkpoints, the best-by-validation checkpoints, the CSV and TensorBoard curves and
`results.json`. The models stay plain `tf.keras.Model`s.

Run folder layout:
  config.json            the whole configuration (and the seed)
  model.json             what `load_user_model` needs besides the weights
  item_features.pkl      the dataset's item features (so the model loads without the data)
  curves.csv             iteration,phase,train_loss,vali_loss,vali_prec1,vali_prec2,events_per_second
  tensorboard/           the same curves as TensorBoard summaries
  checkpoints/latest/    model(s), optimiser(s), iteration, bests and the dropout streams'
                         states: a rerun resumes from here and ends as an uninterrupted run
  checkpoints/best_{loss,prec1,prec2}/   the weights that were best on validation
  results.json           written last: its presence marks the run finished. Test and
                         validation figures of each best checkpoint, their iterations
                         (`best_iteration`), and whether training diverged (`diverged`)

A rerun resumes or reuses the folder only with the same flags, and one run at a time writes
it (`ganrl.train.run_folder`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.data import safe_io
from ganrl.data.dataset import EventArrays, SplitData
from ganrl.data.item_stats import (features_pickle_object, fold_statistics,
                                   with_statistics)
from ganrl.metrics import precision_at_k
from ganrl.train import run_folder
from ganrl.user_model import choice
from ganrl.user_model.choice_model import ChoiceModel
from ganrl.user_model.model import (ModelConfig, UserModel, checkpoint_variables,
                                    random_state_variables)

keras = tf.keras
log = logging.getLogger("ganrl")

BEST_METRICS = ("loss", "prec1", "prec2")
CURVE_FIELDS = ("iteration", "phase", "train_loss", "vali_loss", "vali_prec1", "vali_prec2",
                "events_per_second")
REGULARIZERS = ("entropy", "L2")
ITEM_FEATURES = ("onehot", "generalising")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a user-model run depends on.

    Attributes:
      dataset: dataset name (`NAME.pkl` in `data_folder`).
      data_folder: folder of the processed datasets.
      save_dir: the run folder.
      regularizer: 'entropy' (maximum likelihood) or 'L2' (adversarial min-max).
      learning_rate: Adam step size.
      batch_size: users per training batch.
      num_itrs: training iterations (batches); 0: `num_epochs` passes over the training
        users instead, so a larger log is not under-trained.
      num_epochs: with num_itrs 0, the training length in passes over the training users
        (ceil(num_epochs * training users / batch_size) iterations).
      early_stop: stop once this many evaluations in a row have not improved the validation
        loss (0: never); the best checkpoints are kept either way.
      seed: seeds the initialisation, the data order and `resplit`.
      eval_every: validate every this many iterations.
      pretrain_dir: for 'L2', the entropy run folder whose weights start both the reward r
        and the behaviour network phi.
      pretrain_checkpoint: which of its best checkpoints: 'loss', 'prec1' or 'prec2'.
      start_margin: for 'L2', an adversarial checkpoint replaces the pre-trained start as the
        best by prec@1 (prec@2) only if its validation figure beats the start's by more than
        this many standard errors, sqrt(p (1 - p) / n) over the n validation clicks (0: any
        gain). Fine-tuning then never reports a test prec@k below the start's on a
        validation gain that is only noise.
      resplit: draw a new 50/25/25 user split with `seed` instead of the dataset's split.
      weight_decay: decoupled weight decay of Adam.
      max_events: keep at most this many of a user's most recent events per batch (0: all).
      eval_batch_users: users per evaluation batch.
      steps_per_call: at most this many iterations run in one `tf.function` call.
      checkpoint_secs: save the resumable checkpoint at an evaluation at most this often (and
        always at the end); 0 saves at every evaluation.
      item_features: 'onehot' (the paper's: the dataset's features, one-hot ids) or
        'generalising' (plus item statistics of the training users, `ganrl.data.item_stats`).
      model: the architecture.
    """

    dataset: str = "yelp"
    data_folder: str = "dropbox"
    save_dir: str = "runs/yelp__LSTM__entropy__0"
    regularizer: str = "entropy"
    learning_rate: float = 0.0005
    batch_size: int = 50
    num_itrs: int = 2000
    num_epochs: float = 0.0
    early_stop: int = 0
    seed: int = 0
    eval_every: int = 50
    pretrain_dir: str = ""
    pretrain_checkpoint: str = "prec1"
    start_margin: float = 1.0
    resplit: bool = False
    weight_decay: float = 0.0
    max_events: int = 0
    eval_batch_users: int = 2048
    steps_per_call: int = 100
    item_features: str = "onehot"
    checkpoint_secs: float = 30.0
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)

    def __post_init__(self):
        config_checks.check_choice(self, "regularizer", REGULARIZERS)
        config_checks.check_choice(self, "item_features", ITEM_FEATURES)
        config_checks.check_choice(self, "pretrain_checkpoint", BEST_METRICS)
        config_checks.check(self, "a positive integer", "batch_size", "eval_every",
                            "eval_batch_users", "steps_per_call")
        config_checks.check(self, "a non-negative integer", "seed", "max_events", "num_itrs",
                            "early_stop")
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(self, "a non-negative number", "start_margin", "weight_decay",
                            "checkpoint_secs", "num_epochs")
        if self.num_itrs == 0 and self.num_epochs <= 0:
            raise ValueError("num_itrs=0: the length is then num_epochs, which must be positive")

    def iterations(self, train_users: int) -> int:
        """The training length: `num_itrs`, or `num_epochs` passes over `train_users`."""
        if self.num_itrs:
            return self.num_itrs
        return max(1, math.ceil(self.num_epochs * train_users / self.batch_size))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        model = ModelConfig(**d.pop("model", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(model=model, **{k: v for k, v in d.items() if k in known})


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or Inf."""


# Settings a rerun into a run folder may change: they do not change the results.
RERUN_MAY_CHANGE = ("save_dir", "checkpoint_secs", "eval_batch_users", "steps_per_call")

# A finite training loss that ends more than this many times, and this many nats, above the
# start's validation loss means training diverged: the model ended far worse than it began
# (a step size too large overshoots further at every step).
DIVERGENCE_RATIO = 3.0
DIVERGENCE_NATS = 1.0


def divergence(curve_rows: list[dict]) -> str:
    """Why the rows of curves.csv (iteration 0 first) say training diverged, or ''."""
    if len(curve_rows) < 2:
        return ""
    start, last = float(curve_rows[0]["vali_loss"]), curve_rows[-1]
    loss = float(last["train_loss"])
    if not loss > max(DIVERGENCE_RATIO * start, start + DIVERGENCE_NATS):
        return ""
    return (f"training diverged: the training loss ended at {loss:.4g} (iteration "
            f"{last['iteration']}), far above the start's validation loss {start:.4g}")


# -- Batches -------------------------------------------------------------------------------

# Model settings that shape the variables: a pre-trained run must share them.
ARCHITECTURE_FIELDS = ("item_features", "user_model", "dims", "item_dim", "rnn_hidden_dim",
                       "pw_dim", "pw_band_size", "pw_activation", "rnn_skip", "item_bias",
                       "mlp_item", "bilinear", "display_history",
                       "choice_history", "history_features", "set_context",
                       "set_summary")

BATCH_KEYS = ("display", "display_mask", "clicked_pos", "event_mask", "event_user",
              "clicks_before", "click_items", "click_mask", "user_row")


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
    return epoch_order(n_users, seed, epoch)[index * batch_size:(index + 1) * batch_size]


# -- Evaluation ----------------------------------------------------------------------------

def evaluate(model: UserModel, events: EventArrays, batch_users: int = 2048,
             max_events: int = 0) -> dict[str, float]:
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
    return {"loss": loss, "loglik": -loss,
            "prec1": float(np.nanmean(precision_at_k(scores, masks, clicks, 1)))
            if has_click else float("nan"),
            "prec2": float(np.nanmean(precision_at_k(scores, masks, clicks, 2)))
            if has_click else float("nan"),
            "events": int(len(nll)), "clicked_events": int(np.sum(clicks >= 0))}


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _compiled_logits(model: UserModel, max_display: int) -> Callable:
    cache = model.__dict__.setdefault("_ganrl_logits_fns", {})
    if max_display not in cache:
        cache[max_display] = tf.function(ChoiceModel(model).event_logits,
                                         input_signature=[batch_signature(max_display)])
    return cache[max_display]


# -- Training steps ------------------------------------------------------------------------

def _apply(tape: tf.GradientTape, loss: tf.Tensor, model: keras.Model,
           optimizer: keras.optimizers.Optimizer) -> None:
    grads = tape.gradient(loss, model.trainable_variables)
    # A variable the loss does not reach (the reward's no-click logit in the adversarial
    # step, where the no-click reward is fixed at 0) is left out rather than warned about.
    # Under a tf.distribute strategy the optimiser sums the replicas' gradients.
    optimizer.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables)
                               if g is not None])


def make_entropy_step(model: UserModel, optimizer: keras.optimizers.Optimizer,
                      num_replicas: int = 1) -> Callable:
    """An MLE step (to be traced in a replica context).

    `step(batch, global_events)` returns this replica's share of the global batch's mean NLL:
    its summed NLL divided by the events of the whole global batch, so that the gradients
    the strategy sums over replicas are those of the global mean.
    """

    def step(batch, global_events):
        with tf.GradientTape() as tape:
            logits = model(batch, training=True)
            info = choice.entropy_regularised_loss(logits, batch["clicked_pos"],
                                                   batch["event_mask"])
            loss = info.loss / global_events
            objective = loss + model.regularization_loss() / num_replicas
        _apply(tape, objective, model, optimizer)
        return loss

    return step


def make_l2_step(reward: UserModel, behavior: UserModel,
                 reward_opt: keras.optimizers.Optimizer,
                 behavior_opt: keras.optimizers.Optimizer, num_replicas: int = 1) -> Callable:
    """An adversarial step (to be traced in a replica context): one update of phi (max), then
    one of r (min). Returns this replica's share of the behaviour network's mean NLL (the loss
    the run reports); objectives are normalised by the global batch's events."""

    def option_rewards(batch, training):
        # Training users: their own events leave the item statistics, with or without dropout.
        u = reward.event_utilities(batch, training=training, leave_user_out=True)
        return tf.concat([u, tf.zeros_like(u[..., :1])], axis=-1)  # no-click reward is 0

    def step(batch, global_events):
        options = choice.option_mask(batch["display_mask"], behavior.has_no_click)
        rewards = tf.stop_gradient(option_rewards(batch, False))
        with tf.GradientTape() as tape:
            logits = behavior(batch, training=True)
            phi = tf.nn.softmax(logits)
            gain = choice.l2_behaviour_objective(phi, rewards, options, batch["event_mask"])
            behavior_loss = -gain / global_events + behavior.regularization_loss() / num_replicas
        _apply(tape, behavior_loss, behavior, behavior_opt)

        phi = tf.stop_gradient(tf.nn.softmax(behavior(batch, training=False,
                                                      leave_user_out=True)))
        with tf.GradientTape() as tape:
            gap = choice.l2_reward_objective(phi, option_rewards(batch, True), options,
                                             batch["clicked_pos"], batch["event_mask"])
            reward_loss = gap / global_events + reward.regularization_loss() / num_replicas
        _apply(tape, reward_loss, reward, reward_opt)
        nll = choice.entropy_regularised_loss(logits, batch["clicked_pos"], batch["event_mask"])
        return nll.loss / global_events

    return step


def make_window_fn(step: Callable, strategy: tf.distribute.Strategy,
                   max_display: int | None = None) -> Callable:
    """Runs K training steps in one `tf.function` call.

    One call per evaluation window instead of one per iteration: on small batches the
    per-call overhead, not the maths, bounds the speed. `run_window(batches, global_events)`
    takes per-replica `[K, ...]` stacked batches (from
    `strategy.experimental_distribute_values_from_function`) and the `[K]` event counts of
    the global batches, and returns the `[K]` global batch losses.

    Without a distribution strategy (and given `max_display`) it is traced once, for windows
    of any K, N, B and C; otherwise the second window shape retraces it with relaxed shapes
    (`reduce_retracing`), a second trace of about a second.
    """
    signature = None
    if max_display is not None and strategy is tf.distribute.get_strategy() \
            and not tf.distribute.has_strategy():
        spec = batch_signature(max_display)
        signature = [{k: tf.TensorSpec([None, *spec[k].shape], spec[k].dtype)
                      for k in BATCH_KEYS}, tf.TensorSpec([None], tf.float32)]

    @tf.function(reduce_retracing=True, input_signature=signature)
    def run_window(batches, global_events):
        k = tf.shape(global_events)[0]
        losses = tf.TensorArray(tf.float32, size=k)
        for i in tf.range(k):
            per_replica = strategy.run(
                lambda b, e: step(trim_padding({key: v[i] for key, v in b.items()}), e),
                args=(batches, global_events[i]))
            losses = losses.write(i, strategy.reduce("SUM", per_replica, axis=None))
        return losses.stack()

    return run_window


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
    out = {key: batch[key][:n] for key in ("display", "display_mask", "clicked_pos",
                                          "event_mask", "event_user", "clicks_before")}
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
        out[key] = np.stack([
            np.pad(x[key], [(0, n - d) for n, d in zip(sizes[key], x[key].shape)],
                   constant_values=fill) for x in batches])
    return out


def replica_windows(events: EventArrays, batches_rows: list[np.ndarray], num_replicas: int,
                    max_events: int | None) -> tuple[dict, np.ndarray]:
    """Splits each global batch's users over the replicas and stacks them.

    Returns `[R, K, ...]` arrays (replica r's K batches at [r]) padded to common shapes, and
    the `[K]` event counts of the global batches.
    """
    per_step = []
    for rows in batches_rows:
        per_step.append([events.flat_batch(part, max_events)
                         for part in np.array_split(rows, num_replicas)])
    counts = np.array([sum(len(b["clicked_pos"]) for b in step) for step in per_step],
                      dtype=np.float32)
    flat = stack_batches([b for step in per_step for b in step])  # [K * R, ...]
    k = len(per_step)
    stacked = {key: np.swapaxes(v.reshape((k, num_replicas) + v.shape[1:]), 0, 1)
               for key, v in flat.items()}
    return stacked, counts


def window_bounds(start: int, num_itrs: int, eval_every: int, steps_per_call: int
                  ) -> list[tuple[int, int]]:
    """The (first, last + 1) iterations of each training call from `start` on: up to every
    evaluation, at most `steps_per_call` iterations per call."""
    bounds, it = [], start
    while it < num_itrs:
        end = min((it // eval_every + 1) * eval_every, num_itrs)
        bounds += [(s, min(s + steps_per_call, end)) for s in range(it, end, steps_per_call)]
        it = end
    return bounds


def window_dataset(events: EventArrays, bounds: list[tuple[int, int]], batch_size: int,
                   seed: int, num_replicas: int, max_events: int | None) -> tf.data.Dataset:
    """The training windows as a `tf.data` pipeline: element i holds the `[R, K, ...]` stacked
    batches of `bounds[i]` (`replica_windows`) and their `[K]` event counts. Built from the
    memory-mapped arrays one window ahead of the training (`prefetch`), so reading and padding
    the next window overlaps the current one's steps and memory stays that of two windows."""
    spec = batch_signature(events.max_display)

    def windows():
        for first, last in bounds:
            rows = [batch_rows(events.n_users, batch_size, seed, i) for i in range(first, last)]
            yield replica_windows(events, rows, num_replicas, max_events)

    signature = ({k: tf.TensorSpec([None, None, *spec[k].shape], spec[k].dtype)
                  for k in BATCH_KEYS}, tf.TensorSpec([None], tf.float32))
    return tf.data.Dataset.from_generator(windows, output_signature=signature).prefetch(1)


# -- Runner --------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder (always, unless a multi-worker cluster
    names another task as chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return True
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


class UserModelRunner:
    """Trains, validates, checkpoints and tests one user model run (see module docstring).

    Runs unchanged under any `tf.distribute` strategy: each global batch of `batch_size`
    users is split over the replicas, losses are normalised by the global batch's events and
    the strategy sums the replicas' gradients. Under a multi-worker strategy every worker
    saves (saving is collective), but only the chief writes the run folder; the others write
    checkpoints to a temporary folder that they delete at the end.
    """

    def __init__(self, config: TrainConfig, data: SplitData,
                 progress: Callable[[str], None] | None = None,
                 strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.data = data
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = is_chief(self.strategy)
        self.num_replicas = self.strategy.num_replicas_in_sync
        printer = progress or (lambda line: print(line, flush=True))
        self.progress = printer if self.chief else (lambda line: None)
        self.save_dir = config.save_dir
        self.splits = data.splits
        if self.splits["train"].n_users == 0:
            raise ValueError(f"dataset {data.name!r}: the training split has no users")
        self.has_no_click = bool((self.splits["train"].clicked_pos < 0).any())
        if config.item_features == "generalising":
            data = dataclasses.replace(
                data, item_features=with_statistics(data.item_features, self.splits["train"]))
            self.data = data
        max_display = self.splits["train"].max_display
        if config.model.history_display_width < max_display:  # the step view must hold a set
            config = dataclasses.replace(config, model=dataclasses.replace(
                config.model, history_display_width=max_display))
            self.config = config
        tf.keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self._build_models()
        ckpt = os.path.join(self.save_dir, "checkpoints")
        if not self.chief:  # collective saves need every worker; only the chief's are kept
            ckpt = tempfile.mkdtemp(prefix="ganrl-worker-checkpoints-")
        self._checkpoint_root = ckpt
        self.latest = tf.train.CheckpointManager(self.state, os.path.join(ckpt, "latest"), 1)
        self.best_managers = {
            m: tf.train.CheckpointManager(self.weights, os.path.join(ckpt, f"best_{m}"), 1)
            for m in BEST_METRICS}

    def _build_models(self) -> None:
        config, features = self.config, self.data.item_features
        self.reward = UserModel(features, config.model, self.has_no_click, name="reward")
        self.reward_opt = self._optimizer()
        models = {"reward": self.reward}
        optimizers = {"reward_opt": self.reward_opt}
        self.adversarial = config.regularizer == "L2"
        if self.adversarial:
            self.behavior = UserModel(features, config.model, self.has_no_click,
                                      name="behavior")
            self.behavior_opt = self._optimizer()
            models["behavior"] = self.behavior
            optimizers["behavior_opt"] = self.behavior_opt
            step = make_l2_step(self.reward, self.behavior, self.reward_opt,
                                self.behavior_opt, self.num_replicas)
        else:
            self.behavior = self.reward
            step = make_entropy_step(self.reward, self.reward_opt, self.num_replicas)
        folds = config.model.statistic_folds
        if config.item_features == "generalising" and config.model.leave_user_out and folds:
            user_fold, fold_counts = fold_statistics(self.splits["train"], self.data.n_items,
                                                     folds, config.seed)
            for model in models.values():
                model.use_statistic_folds(user_fold, fold_counts)
        self.window_fn = make_window_fn(step, self.strategy,
                                        self.splits["train"].max_display)
        for name, opt in optimizers.items():  # create slots now, so restores are eager
            model = models["behavior" if name == "behavior_opt" else "reward"]
            opt.build(model.trainable_variables)
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.best = {m: tf.Variable(math.inf if m == "loss" else -math.inf, dtype=tf.float64,
                                    trainable=False, name=f"best_{m}") for m in BEST_METRICS}
        self.weights = tf.train.Checkpoint(**checkpoint_variables(**models))
        self.state = tf.train.Checkpoint(
            iteration=self.iteration, **{f"best_{m}": v for m, v in self.best.items()},
            **checkpoint_variables(**models, **optimizers), **random_state_variables(**models))

    def _optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam(self.config.learning_rate,
                                     weight_decay=self.config.weight_decay or None)

    @property
    def results_path(self) -> str:
        return os.path.join(self.save_dir, "results.json")

    # -- Set-up and resume -----------------------------------------------------------------
    def _start(self) -> int:
        if self.chief:
            os.makedirs(self.save_dir, exist_ok=True)
            safe_io.dump_json(os.path.join(self.save_dir, "config.json"),
                              self.config.to_dict())
            safe_io.dump_json(os.path.join(self.save_dir, "model.json"), {
                "model": dataclasses.asdict(self.config.model),
                "has_no_click": self.has_no_click, "n_items": self.data.n_items,
                "max_display": self.splits["train"].max_display,
                "regularizer": self.config.regularizer, "dataset": self.config.dataset})
            safe_io.dump_pickles(os.path.join(self.save_dir, "item_features.pkl"),
                                 features_pickle_object(self.data.item_features))
        if self.latest.latest_checkpoint:
            self.state.restore(self.latest.latest_checkpoint).assert_existing_objects_matched()
            start = int(self.iteration.numpy())
            self._truncate_curves(start)
            self.progress(f"resuming {self.save_dir} at iteration {start}")
            return start
        if self.adversarial and self.config.pretrain_dir:
            self._load_pretrained(self.config.pretrain_dir)
        self._truncate_curves(-1)
        return 0

    def _load_pretrained(self, pretrain_dir: str) -> None:
        path = self._pretrained_checkpoint(pretrain_dir)
        for model in (self.reward, self.behavior):
            tf.train.Checkpoint(**checkpoint_variables(reward=model)).restore(path) \
                .expect_partial().assert_existing_objects_matched()
        self.progress(f"starting r and phi from {path}")

    def _pretrained_checkpoint(self, pretrain_dir: str) -> str:
        """The checkpoint of `pretrain_dir` to start from, refused unless its architecture is
        this run's."""
        which = f"best_{self.config.pretrain_checkpoint}"
        path = tf.train.latest_checkpoint(os.path.join(pretrain_dir, "checkpoints", which))
        if path is None:
            raise FileNotFoundError(f"{pretrain_dir}: no {which} checkpoint to start from "
                                    "(run the entropy pre-training first)")
        with open(os.path.join(pretrain_dir, "config.json")) as f:
            pretrained = json.load(f)
        # The weights fit only the same architecture: compare what shapes the variables.
        ours = {"item_features": self.config.item_features, **dataclasses.asdict(
            self.config.model)}
        # A field a run folder predates has its default (the option did not exist yet).
        theirs = {"item_features": pretrained.get("item_features"),
                  **dataclasses.asdict(ModelConfig(**pretrained["model"]))}
        differ = [key for key in ARCHITECTURE_FIELDS if theirs.get(key) != ours[key]]
        if differ:
            raise ValueError(
                f"{pretrain_dir}/config.json: the pre-trained model has "
                f"{', '.join(f'{k}={theirs.get(k)!r}' for k in differ)}, this run "
                f"{', '.join(f'{k}={ours[k]!r}' for k in differ)}: pass the pre-training's "
                "model flags")
        return path

    def _truncate_curves(self, last_iteration: int) -> None:
        """Keeps the CSV rows up to `last_iteration` (all are dropped for -1), less any row a
        kill cut short (rows are appended, not written atomically)."""
        if not self.chief:
            return
        path = os.path.join(self.save_dir, "curves.csv")
        rows = [r for r in safe_io.read_csv_rows(path) if int(r["iteration"]) <= last_iteration]
        with safe_io.atomic_open(path, "w") as f:
            writer = csv.DictWriter(f, CURVE_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def _append_curve(self, row: dict) -> None:
        if not self.chief:
            return
        with open(os.path.join(self.save_dir, "curves.csv"), "a", newline="") as f:
            csv.DictWriter(f, CURVE_FIELDS).writerow(row)

    # -- The loop --------------------------------------------------------------------------
    def run(self) -> dict:
        """Trains for `config.iterations` (resuming if interrupted) or until early stopping,
        then tests the best checkpoints.

        The chief holds the run folder meanwhile (`run_folder.claim`): a second run into it,
        or a rerun with other flags, is refused before anything is written.
        """
        if not self.chief:  # its run folder is a temporary one of its own
            return self._run()
        if self.adversarial and self.config.pretrain_dir and not self.latest.latest_checkpoint:
            self._pretrained_checkpoint(self.config.pretrain_dir)  # a bad one: no run folder
        with run_folder.claim(self.save_dir, self.config.to_dict(),
                              lambda saved: TrainConfig.from_dict(saved).to_dict(),
                              ignore=RERUN_MAY_CHANGE):
            return self._run()

    def _run(self) -> dict:
        if os.path.exists(self.results_path):
            with open(self.results_path) as f:
                return json.load(f)
        cfg = self.config
        log.info("config %s", json.dumps(cfg.to_dict(), sort_keys=True))
        start = self._start()
        writer = (tf.summary.create_file_writer(os.path.join(self.save_dir, "tensorboard"))
                  if self.chief else tf.summary.create_noop_writer())
        train = self.splits["train"]
        phase = "adversarial" if self.adversarial else "mle"
        if start == 0:
            self._validate(0, phase, float("nan"), float("nan"), writer)
        train_seconds, train_events = 0.0, 0
        last_save = time.monotonic()
        it = start
        # Up to each evaluation, `steps_per_call` iterations per tf.function call: few calls,
        # and memory bounded by that many batches.
        num_itrs = cfg.iterations(train.n_users)
        bounds = window_bounds(start, num_itrs, cfg.eval_every, cfg.steps_per_call)
        windows = iter(window_dataset(train, bounds, cfg.batch_size, cfg.seed,
                                      self.num_replicas, cfg.max_events or None))
        stopped = self._early_stopped(it)
        while it < num_itrs and not stopped:
            end = min((it // cfg.eval_every + 1) * cfg.eval_every, num_itrs)
            losses, counts, elapsed = [], [], 0.0
            for chunk_start in range(it, end, cfg.steps_per_call):
                chunk_losses, chunk_counts, seconds = self._train_chunk(chunk_start,
                                                                        next(windows))
                losses.append(chunk_losses)
                counts.append(chunk_counts)
                elapsed += seconds
            losses, counts = np.concatenate(losses), np.concatenate(counts)
            train_seconds += elapsed
            train_events += int(counts.sum())
            it = end
            self.iteration.assign(it)
            self._validate(it, phase, float((losses * counts).sum() / max(counts.sum(), 1)),
                           counts.sum() / max(elapsed, 1e-9), writer)
            stopped = self._early_stopped(it)
            if it == num_itrs or stopped or time.monotonic() - last_save >= cfg.checkpoint_secs:
                self.latest.save(checkpoint_number=it)
                last_save = time.monotonic()
        writer.close()
        if stopped:
            self.progress(f"early stop at iteration {it}: the validation loss has not improved "
                          f"for {cfg.early_stop} evaluations")
        results = self._test()
        results["train_seconds"] = train_seconds
        results["events_per_second"] = train_events / max(train_seconds, 1e-9)
        results["peak_rss_mb"] = peak_rss_mb()
        if self.chief:
            self._note_divergence(results)
            safe_io.dump_json(self.results_path, results)
        else:
            shutil.rmtree(self._checkpoint_root, ignore_errors=True)
        return results

    def _early_stopped(self, iteration: int) -> bool:
        """Whether `early_stop` evaluations have passed since the best validation loss (a
        function of the checkpointed state, so a resumed run stops where it would have)."""
        path = self.best_managers["loss"].latest_checkpoint
        if not self.config.early_stop or path is None:
            return False
        best = int(path.rsplit("-", 1)[1])
        return iteration - best >= self.config.early_stop * self.config.eval_every

    def _train_chunk(self, start: int, window: tuple[dict, tf.Tensor]
                     ) -> tuple[np.ndarray, np.ndarray, float]:
        """Trains one window (from `window_dataset`) whose first iteration is `start`: its
        losses, event counts and seconds."""
        stacked, counts = window
        counts = counts.numpy()
        tic = time.perf_counter()
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: v[ctx.replica_id_in_sync_group] for k, v in stacked.items()})
        losses = self.window_fn(per_replica, tf.constant(np.maximum(counts, 1.0))).numpy()
        elapsed = time.perf_counter() - tic
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            raise TrainingDivergedError(
                f"{self.save_dir}: training loss became {losses[bad[0]]} at iteration "
                f"{start + bad[0] + 1}; stopped. The best checkpoints so far are intact in "
                f"{os.path.join(self.save_dir, 'checkpoints')}; try a lower learning_rate.")
        return losses, counts, elapsed

    def _validate(self, iteration: int, phase: str, train_loss: float,
                  events_per_second: float, writer: Any) -> None:
        cfg = self.config
        metrics = evaluate(self.behavior, self.splits["vali"], cfg.eval_batch_users,
                           cfg.max_events)
        for m in BEST_METRICS:
            better = (metrics[m] < self.best[m].numpy() if m == "loss"
                      else metrics[m] > self.best[m].numpy())
            if better and math.isfinite(metrics[m]):
                self.best[m].assign(metrics[m] + self._start_margin(iteration, m, metrics))
                self.best_managers[m].save(checkpoint_number=iteration)
        row = {"iteration": iteration, "phase": phase, "train_loss": train_loss,
               "vali_loss": metrics["loss"], "vali_prec1": metrics["prec1"],
               "vali_prec2": metrics["prec2"], "events_per_second": events_per_second}
        self._append_curve(row)
        with writer.as_default(step=iteration):
            for key in ("train_loss", "vali_loss", "vali_prec1", "vali_prec2",
                        "events_per_second"):
                if math.isfinite(row[key]):
                    tf.summary.scalar(key, row[key])
        self.progress(f"[{os.path.basename(self.save_dir.rstrip('/'))}] itr {iteration:5d}  "
                      f"train_loss {train_loss:.4f}  vali loss {metrics['loss']:.4f}  "
                      f"prec@1 {metrics['prec1']:.4f}  prec@2 {metrics['prec2']:.4f}  "
                      f"{events_per_second:,.0f} events/s")

    def _note_divergence(self, results: dict) -> None:
        """Sets `results["diverged"]` from curves.csv and, when it did, warns and says which
        checkpoints the results come from."""
        with open(os.path.join(self.save_dir, "curves.csv"), newline="") as f:
            warning = divergence(list(csv.DictReader(f)))
        results["diverged"] = bool(warning)
        if warning:
            best = ", ".join(f"{m} {i}" for m, i in results.get("best_iteration", {}).items())
            results["warning"] = (f"{warning}; the results come from the best checkpoints by "
                                  f"validation, of iterations {best}; try a lower "
                                  "learning_rate")
            self.progress(f"warning: {results['warning']}")

    def _start_margin(self, iteration: int, metric: str, metrics: dict) -> float:
        """What a later checkpoint must add to the pre-trained start's prec@k to replace it
        (`start_margin` standard errors; 0 for other metrics, iterations and runs)."""
        if not (self.adversarial and self.config.pretrain_dir and iteration == 0
                and metric in ("prec1", "prec2")):
            return 0.0
        p, n = metrics[metric], max(metrics["clicked_events"], 1)
        return self.config.start_margin * math.sqrt(p * (1.0 - p) / n)

    def _test(self) -> dict:
        """Test figures as the original reports them: each metric from its own best checkpoint."""
        cfg = self.config
        out = {"test": {}, "vali": {}, "test_by_checkpoint": {}}
        for m in BEST_METRICS:
            path = self.best_managers[m].latest_checkpoint
            if path is None:
                continue
            self.weights.restore(path).assert_existing_objects_matched()
            test = evaluate(self.behavior, self.splits["test"], cfg.eval_batch_users,
                            cfg.max_events)
            vali = evaluate(self.behavior, self.splits["vali"], cfg.eval_batch_users,
                            cfg.max_events)
            out["test"][m] = test[m]
            out["vali"][m] = vali[m]
            out["test_by_checkpoint"][f"best_{m}"] = test
            out.setdefault("best_iteration", {})[m] = int(path.rsplit("-", 1)[1])
        # Leave the best-loss weights in memory: that is the model `load_user_model` returns.
        path = self.best_managers["loss"].latest_checkpoint
        if path is not None:
            self.weights.restore(path)
        return out
