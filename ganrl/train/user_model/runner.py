"""The runner of a user model: entropy (MLE) pre-training and L2 adversarial fine-tuning.

`UserModelRunner` owns everything that touches files: the run folder (`save_dir`), resumable
checkpoints, the best-by-validation checkpoints, the CSV and TensorBoard curves and
`results.json`. The models stay plain `tf.keras.Model`s.

Run folder layout:
  config.json            the whole configuration (and the seed)
  model.json             what `load_user_model` needs besides the weights
  item_features.pkl      the dataset's item features (so the model loads without the data)
  curves.csv             iteration,phase,train_loss,vali_loss,vali_prec1,vali_prec2,
                         events_per_second
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

import contextlib
import csv
import dataclasses
import glob
import json
import logging
import math
import os
import resource
import shutil
import tempfile
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ganrl.data import safe_io
from ganrl.data.dataset import SPLIT_NAMES, SplitData, require_every_split
from ganrl.data.item_stats import features_pickle_object, fold_statistics, with_statistics
from ganrl.train import interrupt, run_folder
from ganrl.train.user_model.batching import evaluation_schedule, window_dataset
from ganrl.train.user_model.config import (
    ARCHITECTURE_FIELDS,
    BEST_METRICS,
    CURVE_FIELDS,
    RERUN_MAY_CHANGE,
    TrainConfig,
    TrainingDivergedError,
    divergence,
)
from ganrl.train.user_model.evaluation import evaluate
from ganrl.train.user_model.steps import make_entropy_step, make_l2_step, make_window_fn
from ganrl.user_model.coclick import coclick_embeddings
from ganrl.user_model.model import (
    ModelConfig,
    UserModel,
    checkpoint_variables,
    random_state_variables,
)

keras = tf.keras
log = logging.getLogger("ganrl")


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def in_cluster(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process is one worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return bool(resolver.cluster_spec().as_dict() if resolver is not None else {})


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder (always, unless a multi-worker cluster
    names another task as chief)."""
    if not in_cluster(strategy):
        return True
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def write_checkpoint_state(path: str, prefix: str) -> None:
    """Writes, atomically, the `checkpoint` state file `tf.train.CheckpointManager` reads,
    naming the one checkpoint `prefix` (relative to the file's folder, as the manager writes
    it, so a moved run folder still finds it)."""
    now = time.time()
    with safe_io.atomic_open(path, "w") as f:
        f.write(
            f'model_checkpoint_path: "{prefix}"\n'
            f'all_model_checkpoint_paths: "{prefix}"\n'
            f"all_model_checkpoint_timestamps: {now!r}\n"
            f"last_preserved_timestamp: {now - 1.0!r}\n"
        )


class UserModelRunner:
    """Trains, validates, checkpoints and tests one user model run (see module docstring).

    Runs unchanged under any `tf.distribute` strategy: each global batch of `batch_size`
    users is split over the replicas, losses are normalised by the global batch's events and
    the strategy sums the replicas' gradients. Under a multi-worker strategy every worker
    saves (saving is collective), but only the chief writes the run folder; the others write
    checkpoints to a temporary folder that they delete at the end.
    """

    def __init__(
        self,
        config: TrainConfig,
        data: SplitData,
        progress: Callable[[str], None] | None = None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.config = config
        self.data_fingerprint = data.fingerprint()  # of the logs as given, before any share
        # With `train_share`, the share of the training users the model is fitted to (the
        # same users `load_run_data` reads back for its leave model and the logs' policies).
        data = data.with_training_share(config.train_share, config.seed)
        self.data = data
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = is_chief(self.strategy)
        self._stop_asked = lambda: False  # a stop on a signal (`run` installs the handler)
        self.num_replicas = self.strategy.num_replicas_in_sync
        printer = progress or (lambda line: print(line, flush=True))
        self.progress = printer if self.chief else (lambda line: None)
        self.save_dir = config.save_dir
        self.splits = data.splits
        # Before anything is built or written: no run folder for data it cannot train on.
        safe_io.check_folder_path(config.save_dir, "--save_dir")
        require_every_split(
            [self.splits[name].n_users for name in SPLIT_NAMES],
            f"dataset {data.name!r} in {config.data_folder}",
        )
        # Whether users can decline a display set is a property of the log, read from every
        # split: a no-click option learned from the training users alone would give a rare
        # no-click of a validation or test user probability 0.
        self.has_no_click = any(bool((s.clicked_pos < 0).any()) for s in self.splits.values())
        if config.item_features == "generalising":
            data = dataclasses.replace(
                data, item_features=with_statistics(data.item_features, self.splits["train"])
            )
            self.data = data
        # The architecture built: the configured one, with the step view's memory of display
        # sets widened to the data's widest set (the config itself stays as given).
        self.model_config = config.model
        max_display = self.splits["train"].max_display
        if config.model.history_display_width < max_display:
            self.model_config = dataclasses.replace(config.model, history_display_width=max_display)
        # What config.json records and a rerun must match: the run as built.
        self.run_config = dataclasses.replace(config, model=self.model_config)
        tf.keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self._build_models()
        ckpt = os.path.join(self.save_dir, "checkpoints")
        if not self.chief:  # collective saves need every worker; only the chief's are kept
            ckpt = tempfile.mkdtemp(prefix="ganrl-worker-checkpoints-")
        self._checkpoint_root = ckpt
        self.latest = tf.train.CheckpointManager(self.state, os.path.join(ckpt, "latest"), 1)
        # Each best-by-validation folder keeps its newest checkpoint and, until the resumable
        # checkpoint is saved again, the newer ones (`_keep_best_checkpoints`).
        self.best_managers = {m: self._best_manager(m) for m in BEST_METRICS}

    def _best_manager(self, metric: str) -> tf.train.CheckpointManager:
        folder = os.path.join(self._checkpoint_root, f"best_{metric}")
        return tf.train.CheckpointManager(self.weights, folder, max_to_keep=None)

    def _keep_best_checkpoints(self, last: int | None) -> None:
        """Keeps in each best-by-validation folder only its newest checkpoint of an iteration
        up to `last` (None: of any), so that the best checkpoints agree with the resumable one.

        A best checkpoint is saved at every improvement, the resumable one at most every
        `checkpoint_secs`: a kill between them leaves bests newer than the iteration a rerun
        resumes at. Kept, they would tell the resumed run that the best loss was already
        reached (no learning-rate reduction where the uninterrupted run made one, or one
        that goes "back" to later weights); so the resumable save drops the older bests and
        a resume drops the newer ones (`last`: its iteration; -1 on a fresh start)."""
        for metric in BEST_METRICS:
            folder = os.path.join(self._checkpoint_root, f"best_{metric}")
            found = sorted(
                (int(path[: -len(".index")].rsplit("-", 1)[1]), path[: -len(".index")])
                for path in glob.glob(os.path.join(folder, "ckpt-*.index"))
            )
            keep = [(n, prefix) for n, prefix in found if last is None or n <= last][-1:]
            if found == keep:
                continue
            for n, prefix in found:
                if (n, prefix) not in keep:
                    for path in glob.glob(glob.escape(prefix) + ".*"):
                        os.remove(path)
            state = os.path.join(folder, "checkpoint")
            if keep:
                write_checkpoint_state(state, os.path.basename(keep[0][1]))
            elif os.path.exists(state):
                os.remove(state)
            self.best_managers[metric] = self._best_manager(metric)

    def _build_models(self) -> None:
        config, features = self.config, self.data.item_features
        self.reward = UserModel(features, self.model_config, self.has_no_click, name="reward")
        self.reward_opt = self._optimizer()
        models = {"reward": self.reward}
        optimizers = {"reward_opt": self.reward_opt}
        self.adversarial = config.regularizer == "L2"
        if self.adversarial:
            self.behavior = UserModel(
                features, self.model_config, self.has_no_click, name="behavior"
            )
            self.behavior_opt = self._optimizer()
            models["behavior"] = self.behavior
            optimizers["behavior_opt"] = self.behavior_opt
            step = make_l2_step(
                self.reward, self.behavior, self.reward_opt, self.behavior_opt, self.num_replicas
            )
        else:
            self.behavior = self.reward
            step = make_entropy_step(self.reward, self.reward_opt, self.num_replicas)
        if self.model_config.item_init == "coclick":
            self._start_from_coclicks(models.values())
        folds = config.model.statistic_folds
        if config.item_features == "generalising" and config.model.leave_user_out and folds:
            user_fold, fold_counts = fold_statistics(
                self.splits["train"], self.data.n_items, folds, config.seed
            )
            for model in models.values():
                model.use_statistic_folds(user_fold, fold_counts)
        self.window_fn = make_window_fn(step, self.strategy, self.splits["train"].max_display)
        for name, opt in optimizers.items():  # create slots now, so restores are eager
            model = models["behavior" if name == "behavior_opt" else "reward"]
            opt.build(model.trainable_variables)
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.best = {
            m: tf.Variable(
                math.inf if m == "loss" else -math.inf,
                dtype=tf.float64,
                trainable=False,
                name=f"best_{m}",
            )
            for m in BEST_METRICS
        }
        self.weights = tf.train.Checkpoint(**checkpoint_variables(**models))
        # The learning-rate reductions so far and the iteration of the last (each optimiser's
        # learning rate is one of its variables, so it is checkpointed with it). Only runs
        # that reduce keep them, so older run folders still resume.
        self.reductions = tf.Variable(0, dtype=tf.int64, trainable=False, name="reductions")
        self.reduced_at = tf.Variable(0, dtype=tf.int64, trainable=False, name="reduced_at")
        plateau = (
            {"lr_reductions": self.reductions, "lr_reduced_at": self.reduced_at}
            if config.lr_plateau
            else {}
        )
        self.state = tf.train.Checkpoint(
            **plateau,
            iteration=self.iteration,
            **{f"best_{m}": v for m, v in self.best.items()},
            **checkpoint_variables(**models, **optimizers),
            **random_state_variables(**models),
        )

    def _start_from_coclicks(self, models) -> None:
        """Starts each model's identity embedding from the training users' co-clicks
        (`ganrl.user_model.coclick`); a resumed or pre-trained run then restores over it."""
        identities = [m.items.identity for m in models if m.items.identity is not None]
        if not identities:
            return
        table = coclick_embeddings(
            self.splits["train"],
            self.data.n_items,
            self.model_config.item_dim,
            seed=self.config.seed,
        )
        for identity in identities:
            identity.embeddings.assign(table)

    def _optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam(
            self.config.learning_rate,
            weight_decay=self.config.weight_decay or None,
            use_ema=bool(self.config.ema),
            ema_momentum=self.config.ema or 0.99,
        )

    @contextlib.contextmanager
    def _averaged_weights(self):
        """With `ema`, the models hold their weights' moving averages (kept by each
        optimiser) inside the block and their own weights again after it; before the
        first step (no average yet), and without `ema`, they hold their weights."""
        pairs = [(self.reward_opt, self.reward)]
        if self.adversarial:
            pairs.append((self.behavior_opt, self.behavior))
        if not self.config.ema or int(self.reward_opt.iterations.numpy()) == 0:
            yield
            return
        saved = [[v.numpy() for v in model.trainable_variables] for _, model in pairs]
        for opt, model in pairs:
            opt.finalize_variable_values(model.trainable_variables)
        try:
            yield
        finally:
            for (_, model), values in zip(pairs, saved):
                for variable, value in zip(model.trainable_variables, values):
                    variable.assign(value)

    @property
    def results_path(self) -> str:
        return os.path.join(self.save_dir, "results.json")

    # -- Set-up and resume -----------------------------------------------------------------
    def _start(self) -> int:
        if self.chief:
            safe_io.make_folder(self.save_dir, "--save_dir")
            safe_io.dump_json(os.path.join(self.save_dir, "config.json"), self.run_config.to_dict())
            safe_io.dump_json(
                os.path.join(self.save_dir, "model.json"),
                {
                    "model": dataclasses.asdict(self.model_config),
                    "has_no_click": self.has_no_click,
                    "n_items": self.data.n_items,
                    "max_display": self.splits["train"].max_display,
                    "regularizer": self.config.regularizer,
                    "dataset": self.config.dataset,
                    # Both objectives train the reward's no-click utility as its zero point
                    # (`load_user_model` reads older adversarial runs by their own).
                    "reward_zero": "no_click",
                },
            )
            safe_io.dump_pickles(
                os.path.join(self.save_dir, "item_features.pkl"),
                features_pickle_object(self.data.item_features),
            )
        if self.latest.latest_checkpoint:
            self.state.restore(self.latest.latest_checkpoint).assert_existing_objects_matched()
            start = int(self.iteration.numpy())
            self._keep_best_checkpoints(start)
            self._truncate_curves(start)
            self.progress(f"resuming {self.save_dir} at iteration {start}")
            return start
        self._keep_best_checkpoints(-1)
        if self.adversarial and self.config.pretrain_dir:
            self._load_pretrained(self.config.pretrain_dir)
        self._truncate_curves(-1)
        return 0

    def _load_pretrained(self, pretrain_dir: str) -> None:
        path = self._pretrained_checkpoint(pretrain_dir)
        for model in (self.reward, self.behavior):
            tf.train.Checkpoint(**checkpoint_variables(reward=model)).restore(
                path
            ).expect_partial().assert_existing_objects_matched()
        self.progress(f"starting r and phi from {path}")

    def _pretrained_checkpoint(self, pretrain_dir: str) -> str:
        """The checkpoint of `pretrain_dir` to start from, refused unless its architecture is
        this run's."""
        which = f"best_{self.config.pretrain_checkpoint}"
        path = tf.train.latest_checkpoint(os.path.join(pretrain_dir, "checkpoints", which))
        if path is None:
            raise FileNotFoundError(
                f"{pretrain_dir}: no {which} checkpoint to start from "
                "(run the entropy pre-training first)"
            )
        with open(os.path.join(pretrain_dir, "config.json")) as f:
            pretrained = json.load(f)
        # The weights fit only the same architecture: compare what shapes the variables.
        ours = {"item_features": self.config.item_features, **dataclasses.asdict(self.config.model)}
        # A field a run folder predates has its default (the option did not exist yet).
        theirs = {
            "item_features": pretrained.get("item_features"),
            **dataclasses.asdict(ModelConfig(**pretrained["model"])),
        }
        differ = [key for key in ARCHITECTURE_FIELDS if theirs.get(key) != ours[key]]
        if differ:
            raise ValueError(
                f"{pretrain_dir}/config.json: the pre-trained model has "
                f"{', '.join(f'{k}={theirs.get(k)!r}' for k in differ)}, this run "
                f"{', '.join(f'{k}={ours[k]!r}' for k in differ)}: pass the pre-training's "
                "model flags"
            )
        return path

    def _truncate_curves(self, last_iteration: int) -> None:
        """Keeps the CSV rows up to `last_iteration` (all are dropped for -1), less any row a
        kill cut short (rows are appended, not written atomically)."""
        if not self.chief:
            return
        path = os.path.join(self.save_dir, "curves.csv")
        rows = [r for r in safe_io.read_csv_rows(path) if int(r["iteration"]) <= last_iteration]
        safe_io.write_csv_rows(path, CURVE_FIELDS, rows)

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
        with (
            run_folder.claim(
                self.save_dir,
                self.run_config.to_dict(),
                lambda saved: TrainConfig.from_dict(saved).to_dict(),
                ignore=RERUN_MAY_CHANGE,
            ),
            interrupt.stop_requests(enabled=not in_cluster(self.strategy)) as self._stop_asked,
        ):
            run_folder.require_same_data(
                self.save_dir,
                f"dataset {self.data.name!r} in {self.config.data_folder}",
                self.data_fingerprint,
            )
            return self._run()

    def _run(self) -> dict:
        if os.path.exists(self.results_path):
            with open(self.results_path) as f:
                return json.load(f)
        cfg = self.config
        log.info("config %s", json.dumps(self.run_config.to_dict(), sort_keys=True))
        start = self._start()
        writer = (
            tf.summary.create_file_writer(os.path.join(self.save_dir, "tensorboard"))
            if self.chief
            else tf.summary.create_noop_writer()
        )
        train = self.splits["train"]
        phase = "adversarial" if self.adversarial else "mle"
        if start == 0:
            self._validate(0, phase, float("nan"), float("nan"), writer)
        train_seconds, train_events = self._training_time(start)
        last_save = time.monotonic()
        it = start
        # Up to each evaluation, `steps_per_call` iterations per tf.function call: few calls,
        # and memory bounded by that many batches.
        num_itrs = cfg.iterations(train.n_users)
        schedule = evaluation_schedule(start, num_itrs, cfg.eval_every, cfg.steps_per_call)
        windows = iter(
            window_dataset(
                train,
                [b for calls in schedule for b in calls],
                cfg.batch_size,
                cfg.seed,
                self.num_replicas,
                cfg.max_events or None,
            )
        )
        stopped = self._early_stopped(it)
        for calls in schedule:
            if stopped:
                break
            losses, counts, elapsed = [], [], 0.0
            for first, _ in calls:
                chunk_losses, chunk_counts, seconds = self._train_chunk(first, next(windows))
                losses.append(chunk_losses)
                counts.append(chunk_counts)
                elapsed += seconds
            losses, counts = np.concatenate(losses), np.concatenate(counts)
            train_seconds += elapsed
            train_events += int(counts.sum())
            it = calls[-1][1]
            self.iteration.assign(it)
            self._validate(
                it,
                phase,
                float((losses * counts).sum() / max(counts.sum(), 1)),
                counts.sum() / max(elapsed, 1e-9),
                writer,
            )
            stopped = self._early_stopped(it)
            if not stopped and self._plateaued(it):
                self._reduce_learning_rate(it)
            asked = self._stop_asked()
            if (
                it == num_itrs
                or stopped
                or asked
                or time.monotonic() - last_save >= cfg.checkpoint_secs
            ):
                self.latest.save(checkpoint_number=it)
                self._keep_best_checkpoints(None)
                if self.chief:
                    safe_io.dump_json(
                        self._timing_path,
                        {"iteration": it, "train_seconds": train_seconds, "events": train_events},
                    )
                last_save = time.monotonic()
            if asked and not (it == num_itrs or stopped):
                writer.close()
                raise interrupt.Interrupted(
                    f"{self.save_dir}: stopped at iteration {it} on a signal, its checkpoint "
                    "saved; rerun the same command to resume from there"
                )
        writer.close()
        if stopped:
            self.progress(
                f"early stop at iteration {it}: the validation loss has not improved "
                f"for {cfg.early_stop} evaluations"
            )
        results = self._test()
        results["train_seconds"] = train_seconds
        results["train_events"] = train_events
        results["events_per_second"] = train_events / max(train_seconds, 1e-9)
        results["peak_rss_mb"] = peak_rss_mb()
        if self.chief:
            self._note_divergence(results)
            safe_io.dump_json(self.results_path, results)
        else:
            shutil.rmtree(self._checkpoint_root, ignore_errors=True)
        return results

    @property
    def _timing_path(self) -> str:
        return os.path.join(self._checkpoint_root, "timing.json")

    def _training_time(self, start: int) -> tuple[float, int]:
        """The training seconds and events before iteration `start` (a resumed run's earlier
        segments, as saved beside its checkpoint), so that the results' `train_seconds` and
        `events_per_second` cover the whole run. A kill between a checkpoint and this record
        leaves the record of the checkpoint before: the time since is not counted."""
        if start == 0 or not os.path.exists(self._timing_path):
            return 0.0, 0
        with open(self._timing_path) as f:
            saved = json.load(f)
        if not isinstance(saved, dict) or int(saved.get("iteration", start + 1)) > start:
            return 0.0, 0
        return float(saved["train_seconds"]), int(saved["events"])

    def _early_stopped(self, iteration: int) -> bool:
        """Whether `early_stop` evaluations have passed since the best validation loss (a
        function of the checkpointed state, so a resumed run stops where it would have)."""
        best = self._best_loss_iteration()
        if not self.config.early_stop or best is None:
            return False
        return iteration - best >= self.config.early_stop * self.config.eval_every

    def _best_loss_iteration(self) -> int | None:
        path = self.best_managers["loss"].latest_checkpoint
        return None if path is None else int(path.rsplit("-", 1)[1])

    def _plateaued(self, iteration: int) -> bool:
        """Whether `lr_plateau` evaluations have passed since the best validation loss and
        the last reduction, with reductions left."""
        cfg, best = self.config, self._best_loss_iteration()
        if (
            not cfg.lr_plateau
            or best is None
            or int(self.reductions.numpy()) >= cfg.lr_plateau_times
        ):
            return False
        since = max(best, int(self.reduced_at.numpy()))
        return iteration - since >= cfg.lr_plateau * cfg.eval_every

    def _reduce_learning_rate(self, iteration: int) -> None:
        """Back to the best-loss weights, with the learning rate times `lr_plateau_factor`
        (the optimisers' moments are kept: they are running averages of recent gradients)."""
        self.weights.restore(self.best_managers["loss"].latest_checkpoint)
        optimizers = [self.reward_opt] + ([self.behavior_opt] if self.adversarial else [])
        for opt in optimizers:
            opt.learning_rate.assign(opt.learning_rate * self.config.lr_plateau_factor)
        self.reductions.assign_add(1)
        self.reduced_at.assign(iteration)
        self.progress(
            f"iteration {iteration}: back to the best-loss weights of iteration "
            f"{self._best_loss_iteration()}, learning rate "
            f"{float(self.reward_opt.learning_rate.numpy()):.3g}"
        )

    def _train_chunk(
        self, start: int, window: tuple[dict, tf.Tensor]
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Trains one window (from `window_dataset`) whose first iteration is `start`: its
        losses, event counts and seconds."""
        stacked, counts = window
        counts = counts.numpy()
        tic = time.perf_counter()
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: {k: v[ctx.replica_id_in_sync_group] for k, v in stacked.items()}
        )
        losses = self.window_fn(per_replica, tf.constant(np.maximum(counts, 1.0))).numpy()
        elapsed = time.perf_counter() - tic
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            raise TrainingDivergedError(
                f"{self.save_dir}: training loss became {losses[bad[0]]} at iteration "
                f"{start + bad[0] + 1}; stopped. The best checkpoints so far are intact in "
                f"{os.path.join(self.save_dir, 'checkpoints')}; try a lower learning_rate."
            )
        return losses, counts, elapsed

    def _validate(
        self, iteration: int, phase: str, train_loss: float, events_per_second: float, writer: Any
    ) -> None:
        cfg = self.config
        with self._averaged_weights():  # the best checkpoints keep the averages
            metrics = evaluate(
                self.behavior, self.splits["vali"], cfg.eval_batch_users, cfg.max_events
            )
            for m in BEST_METRICS:
                better = (
                    metrics[m] < self.best[m].numpy()
                    if m == "loss"
                    else metrics[m] > self.best[m].numpy()
                )
                if better and math.isfinite(metrics[m]):
                    self.best[m].assign(metrics[m] + self._start_margin(iteration, m, metrics))
                    self.best_managers[m].save(checkpoint_number=iteration)
        row = {
            "iteration": iteration,
            "phase": phase,
            "train_loss": train_loss,
            "vali_loss": metrics["loss"],
            "vali_prec1": metrics["prec1"],
            "vali_prec2": metrics["prec2"],
            "events_per_second": events_per_second,
        }
        self._append_curve(row)
        with writer.as_default(step=iteration):
            for key in ("train_loss", "vali_loss", "vali_prec1", "vali_prec2", "events_per_second"):
                if math.isfinite(row[key]):
                    tf.summary.scalar(key, row[key])
        self.progress(
            f"[{os.path.basename(self.save_dir.rstrip('/'))}] itr {iteration:5d}  "
            f"train_loss {_figure(train_loss, '.4f')}  "
            f"vali loss {_figure(metrics['loss'], '.4f')}  "
            f"prec@1 {_figure(metrics['prec1'], '.4f')}  "
            f"prec@2 {_figure(metrics['prec2'], '.4f')}  "
            f"{_figure(events_per_second, ',.0f')} events/s"
        )

    def _note_divergence(self, results: dict) -> None:
        """Sets `results["diverged"]` from curves.csv and, when it did, warns and says which
        checkpoints the results come from."""
        with open(os.path.join(self.save_dir, "curves.csv"), newline="") as f:
            warning = divergence(list(csv.DictReader(f)))
        results["diverged"] = bool(warning)
        if warning:
            best = ", ".join(f"{m} {i}" for m, i in results.get("best_iteration", {}).items())
            results["warning"] = (
                f"{warning}; the results come from the best checkpoints by "
                f"validation, of iterations {best}; try a lower "
                "learning_rate"
            )
            self.progress(f"warning: {results['warning']}")

    def _start_margin(self, iteration: int, metric: str, metrics: dict) -> float:
        """What a later checkpoint must add to the pre-trained start's prec@k to replace it
        (`start_margin` standard errors; 0 for other metrics, iterations and runs)."""
        if not (
            self.adversarial
            and self.config.pretrain_dir
            and iteration == 0
            and metric in ("prec1", "prec2")
        ):
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
            test = evaluate(
                self.behavior, self.splits["test"], cfg.eval_batch_users, cfg.max_events
            )
            vali = evaluate(
                self.behavior, self.splits["vali"], cfg.eval_batch_users, cfg.max_events
            )
            out["test"][m] = test[m]
            out["vali"][m] = vali[m]
            out["test_by_checkpoint"][f"best_{m}"] = test
            out.setdefault("best_iteration", {})[m] = int(path.rsplit("-", 1)[1])
        # Leave the best-loss weights in memory: that is the model `load_user_model` returns.
        path = self.best_managers["loss"].latest_checkpoint
        if path is not None:
            self.weights.restore(path)
        return out


def _figure(value: float, spec: str) -> str:
    """`value` formatted by `spec`, or '-' for a figure not measured (NaN): the first
    evaluation comes before any training step."""
    return format(value, spec) if math.isfinite(value) else "-"
