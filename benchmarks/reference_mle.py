"""The reference learner of a synthetic world: the generator's own choice model, fitted.

What a correctly specified model learns from the log alone (item ids, display sets, clicks):
the form of `ganrl.data.synthetic` with every parameter free, the item vectors v `[items, d]`,
the biases b `[items]`, the history weights (beta for a `mean` history, w_1..w_L for a `lag`
one) and, when the training log has no-click display sets, the no-click utility. The user's
taste theta is latent with its prior N(0, I_d) fixed, so a user's likelihood is the marginal

  p(c_1..c_T) = mean_s prod_t p(c_t | theta_s, params),  theta_1..theta_S ~ N(0, I) fixed,

and training maximises the training users' sum of its logarithm with Adam, stopping early on
the validation users' (the weights of the best epoch are kept). Predictions for a user's event
t are the posterior predictive given her earlier events: the choice probabilities under each
draw, weighted by the likelihood of her events before t (self-normalised importance weights,
as the generator's reachable limit, which knows v, b and the history weights instead). The
loss reported is the mean negative log of that predictive probability of the observed choice
per event (summed over a user's events, the negative log marginal likelihood).

The form (history effect, L, d) is read from `NAME-truth.npz`'s config unless given.

  python benchmarks/reference_mle.py --data_folder=DIR --dataset=synthetic --out=DIR/ref.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.data import safe_io  # noqa: E402
from ganrl.data.dataset import SPLIT_NAMES, EventArrays, load_split_data, paths  # noqa: E402
from ganrl.data.synthetic import earlier_clicks, load_truth  # noqa: E402
from ganrl.metrics import ranking_summary  # noqa: E402

# Utility of padding: far below any real utility, finite so a padded event stays finite.
_PADDING = -1e9


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """Settings of the reference learner.

    Attributes:
      history: the history effect's form, `mean` or `lag`.
      history_lags: L of a `lag` history.
      feature_dim: d, the width of item vectors and tastes.
      samples: S, the fixed prior draws of the taste.
      learning_rate: Adam's step size.
      batch_users: training users per step.
      max_epochs: passes over the training users at most.
      patience: epochs without a better validation loss before stopping.
      init_scale: standard deviation of the initial item vectors.
      seed: draws, initialisation and batch order.
    """

    history: str = "lag"
    history_lags: int = 3
    feature_dim: int = 8
    samples: int = 512
    learning_rate: float = 0.01
    batch_users: int = 250
    max_epochs: int = 300
    patience: int = 8
    init_scale: float = 0.1
    seed: int = 0

    @property
    def history_depth(self) -> int:
        """How many earlier clicks an event's history holds (all of them for `mean`, up to
        `_MEAN_DEPTH`)."""
        return self.history_lags if self.history == "lag" else _MEAN_DEPTH


# A `mean` history averages at most this many earlier clicks (the synthetic users have 8
# display sets; the generator's mean reads every earlier click).
_MEAN_DEPTH = 64


class UserTensors(NamedTuple):
    """A split's users, padded over time.

    display `[U, T, D]` int32, display_mask `[U, T, D]` bool, choice `[U, T]` int32 (the
    clicked position, D for no click), event_mask `[U, T]` bool, earlier `[U, T, K]` int32 (the
    user's clicked items before each event, most recent first, -1 padded).
    """

    display: np.ndarray
    display_mask: np.ndarray
    choice: np.ndarray
    event_mask: np.ndarray
    earlier: np.ndarray

    def rows(self, users: np.ndarray) -> "UserTensors":
        return UserTensors(*(x[users] for x in self))


def user_tensors(events: EventArrays, depth: int) -> UserTensors:
    """The padded per-user view of `events` with each event's last `depth` earlier clicks."""
    depth = min(depth, max(int(events.events_per_user.max(initial=1)) - 1, 1))
    batch = events.user_batch(np.arange(events.n_users))
    flat_earlier = earlier_clicks(events.clicked_item, events.event_offsets, depth)
    steps = np.arange(batch["event_mask"].shape[1])[None, :]
    rows = np.where(batch["event_mask"], events.event_offsets[:-1, None] + steps, 0)
    earlier = np.where(batch["event_mask"][..., None], flat_earlier[rows], -1)
    choice = np.where(batch["clicked_pos"] >= 0, batch["clicked_pos"], events.max_display)
    return UserTensors(
        batch["display"].astype(np.int32),
        batch["display_mask"],
        choice.astype(np.int32),
        batch["event_mask"],
        earlier.astype(np.int32),
    )


class ChoiceModel(tf.Module):
    """The generator's choice model with free parameters (see the module docstring)."""

    def __init__(self, n_items: int, config: ReferenceConfig, has_no_click: bool):
        super().__init__(name="reference_choice_model")
        init = tf.random.stateless_normal(
            [n_items, config.feature_dim], [config.seed, 0], stddev=config.init_scale
        )
        self.item_vectors = tf.Variable(init, name="item_vectors")
        self.item_bias = tf.Variable(tf.zeros([n_items]), name="item_bias")
        self.history = config.history
        self.history_weights = tf.Variable(
            tf.zeros([config.history_lags if config.history == "lag" else 1]),
            name="history_weights",
        )  # [L] lag weights or [1] beta
        self.no_click = tf.Variable(0.0, name="no_click_utility") if has_no_click else None

    def fitted(self) -> dict:
        """The fitted history weights and no-click utility."""
        return {
            "history_weights": self.history_weights.numpy().tolist(),
            "no_click_utility": None if self.no_click is None else float(self.no_click.numpy()),
        }

    def click_weights(self, earlier: tf.Tensor) -> tf.Tensor:
        """`[..., K]` earlier clicks (-1 padded) -> their weights `[..., K]` in h."""
        valid = tf.cast(earlier >= 0, tf.float32)
        if self.history == "lag":
            return self.history_weights[: tf.shape(earlier)[-1]] * valid
        count = tf.maximum(tf.reduce_sum(valid, -1, keepdims=True), 1.0)
        return self.history_weights[0] * valid / count

    def utilities(self, batch: UserTensors, draws: tf.Tensor) -> tf.Tensor:
        """Every option's utility under each draw.

        Args:
          batch: `UserTensors` of B users.
          draws: `[S, d]` taste draws.

        Returns:
          `[B, T, D + 1, S]` theta_s . v_i + h . v_i + b_i of the displayed items (`_PADDING`
          on padding), then the no-click option's (`_PADDING` when there is none).
        """
        vd = tf.gather(self.item_vectors, batch.display)  # [B, T, D, d]
        earlier_v = tf.gather(self.item_vectors, tf.maximum(batch.earlier, 0))  # [B, T, K, d]
        h = tf.einsum("btk,btkd->btd", self.click_weights(batch.earlier), earlier_v)
        base = tf.einsum("btd,btjd->btj", h, vd) + tf.gather(self.item_bias, batch.display)
        utility = base[..., None] + tf.einsum("btjd,sd->btjs", vd, draws)  # [B, T, D, S]
        utility = tf.where(batch.display_mask[..., None], utility, _PADDING)
        no_click = _PADDING if self.no_click is None else self.no_click
        no_click = tf.fill(
            tf.concat([tf.shape(utility)[:2], [1], tf.shape(draws)[:1]], 0), no_click
        )
        return tf.concat([utility, no_click], axis=2)


def chosen_log_probs(utilities: tf.Tensor, batch: UserTensors) -> tf.Tensor:
    """`[B, T, D + 1, S]` utilities -> `[B, T, S]` log p(observed choice | theta_s) of the
    softmax choice, 0 on padded events."""
    chosen = tf.gather(utilities, batch.choice[..., None], axis=2, batch_dims=2)[:, :, 0]
    chosen -= tf.reduce_logsumexp(utilities, axis=2)
    return tf.where(batch.event_mask[..., None], chosen, 0.0)


def marginal_log_likelihood(chosen: tf.Tensor) -> tf.Tensor:
    """`[B, T, S]` chosen log-probabilities -> `[B]` log mean_s prod_t p(c_t | theta_s)."""
    samples = tf.cast(tf.shape(chosen)[-1], tf.float32)
    return tf.reduce_logsumexp(tf.reduce_sum(chosen, axis=1), axis=-1) - tf.math.log(samples)


def posterior_predictive(utilities: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
    """`[B, T, D + 1]` each event's choice probabilities given the user's earlier events.

    Args:
      utilities: `[B, T, D + 1, S]` from `ChoiceModel.utilities`.
      chosen: `[B, T, S]` from `chosen_log_probs`.
    """
    before = tf.cumsum(chosen, axis=1, exclusive=True)  # log-likelihood of events < t
    weights = tf.nn.softmax(before, axis=-1)  # [B, T, S]
    return tf.einsum("btjs,bts->btj", tf.nn.softmax(utilities, axis=2), weights)


class Loss(NamedTuple):
    loss: tf.Tensor  # negative marginal log-likelihood per event
    events: tf.Tensor


def loss_fn(model: ChoiceModel, batch: UserTensors, draws: tf.Tensor) -> Loss:
    chosen = chosen_log_probs(model.utilities(batch, draws), batch)
    events = tf.reduce_sum(tf.cast(batch.event_mask, tf.float32))
    return Loss(-tf.reduce_sum(marginal_log_likelihood(chosen)) / tf.maximum(events, 1.0), events)


def _signature() -> UserTensors:
    return UserTensors(
        tf.TensorSpec([None, None, None], tf.int32),
        tf.TensorSpec([None, None, None], tf.bool),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.bool),
        tf.TensorSpec([None, None, None], tf.int32),
    )


class ReferenceLearner:
    """Fits a `ChoiceModel` (or `model`, any module with its `utilities(batch, draws)` and
    `fitted()`, and optionally a `penalty()` added to the training loss) on the training
    users with early stopping on validation."""

    def __init__(
        self,
        n_items: int,
        config: ReferenceConfig,
        has_no_click: bool,
        model: tf.Module | None = None,
    ):
        self.config = config
        self.model = model or ChoiceModel(n_items, config, has_no_click)
        self.draws = tf.random.stateless_normal(
            [config.samples, config.feature_dim], [config.seed, 1]
        )
        self.optimizer = tf.keras.optimizers.Adam(config.learning_rate)
        self.train_step = tf.function(self._train_step, input_signature=[_signature()])
        self.predict = tf.function(self._predict, input_signature=[_signature()])
        self.batch_loss = tf.function(
            lambda batch: loss_fn(self.model, batch, self.draws), input_signature=[_signature()]
        )

    def _train_step(self, batch: UserTensors) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(self.model, batch, self.draws).loss
            # A model may add a penalty (a prior on its parameters) to what it minimises.
            objective = loss + self.model.penalty() if hasattr(self.model, "penalty") else loss
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
        return loss

    def _predict(self, batch: UserTensors) -> tuple[tf.Tensor, tf.Tensor]:
        """`[B, T, D + 1]` posterior-predictive probabilities and `[B]` marginal
        log-likelihoods."""
        utilities = self.model.utilities(batch, self.draws)
        chosen = chosen_log_probs(utilities, batch)
        return posterior_predictive(utilities, chosen), marginal_log_likelihood(chosen)

    def _parts(self, users: UserTensors):
        """`users` in batches of `batch_users`, in order."""
        for first in range(0, len(users.choice), self.config.batch_users):
            yield users.rows(
                np.arange(first, min(first + self.config.batch_users, len(users.choice)))
            )

    def loss(self, users: UserTensors) -> float:
        """The negative marginal log-likelihood per event of `users`."""
        total = [self.batch_loss(part) for part in self._parts(users)]
        return float(
            sum(float(x.loss * x.events) for x in total)
            / max(sum(float(x.events) for x in total), 1.0)
        )

    def evaluate(self, users: UserTensors) -> dict:
        """Loss (mean negative log predictive probability per event), prec@1 and prec@2."""
        probs, loglik = [], 0.0
        for part in self._parts(users):
            p, ll = self.predict(part)
            probs.append(p.numpy()[part.event_mask])
            loglik += float(tf.reduce_sum(ll))
        probs = np.concatenate(probs)
        mask = users.display_mask[users.event_mask]
        choice = users.choice[users.event_mask]
        clicked = np.where(choice < mask.shape[1], choice, -1)
        events = int(users.event_mask.sum())
        return {
            "loss": -loglik / max(events, 1),
            "events": events,
            **ranking_summary(np.where(mask, probs[:, :-1], 0.0), mask, clicked),
        }

    def event_predictions(self, users: UserTensors) -> dict[str, np.ndarray]:
        """Per event, user by user in order (as `ganrl.train.user_model.event_predictions`):
        `nll [E]`, `scores [E, D]` (posterior-predictive probabilities), `display_mask
        [E, D]`, `clicked_pos [E]` (-1 for no click) and `step [E]`."""
        probs = []
        for part in self._parts(users):
            probs.append(self.predict(part)[0].numpy())
        probs = np.concatenate(probs)[users.event_mask]  # [E, D + 1]
        choice = users.choice[users.event_mask]
        mask = users.display_mask[users.event_mask]
        steps = np.broadcast_to(np.arange(users.event_mask.shape[1]), users.event_mask.shape)
        chosen = np.take_along_axis(probs, choice[:, None], -1)[:, 0]
        return {
            "nll": -np.log(np.maximum(chosen, np.finfo(np.float32).tiny)),
            "scores": probs[:, :-1],
            "display_mask": mask,
            "clicked_pos": np.where(choice < mask.shape[1], choice, -1),
            "step": steps[users.event_mask],
        }

    def fit(self, train: UserTensors, vali: UserTensors, progress=lambda line: None) -> dict:
        """Adam over shuffled batches of training users, an epoch at a time; keeps the
        parameters of the epoch with the best validation loss. Returns the training log."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        best = (np.inf, 0, [v.numpy() for v in self.model.variables])
        curve = []
        for epoch in range(1, cfg.max_epochs + 1):
            order = rng.permutation(len(train.choice))
            losses = []
            for first in range(0, len(order), cfg.batch_users):
                loss = float(self.train_step(train.rows(order[first : first + cfg.batch_users])))
                if not np.isfinite(loss):
                    raise FloatingPointError(f"training loss {loss} at epoch {epoch}")
                losses.append(loss)
            vali_loss = self.loss(vali)
            curve.append(
                {"epoch": epoch, "train_loss": float(np.mean(losses)), "vali_loss": vali_loss}
            )
            progress(
                f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  vali loss {vali_loss:.4f}"
            )
            if vali_loss < best[0]:
                best = (vali_loss, epoch, [v.numpy() for v in self.model.variables])
            elif epoch - best[1] >= cfg.patience:
                break
        for variable, value in zip(self.model.variables, best[2]):
            variable.assign(value)
        return {"best_epoch": best[1], "epochs": len(curve), "curve": curve}


def run(
    data_folder: str,
    dataset: str,
    config: ReferenceConfig,
    progress=lambda line: None,
    make_model=None,
) -> dict:
    """Fits the reference learner on `dataset` and evaluates it on every split;
    `make_model(n_items, has_no_click)` builds another choice model than `ChoiceModel`."""
    data = load_split_data(data_folder, dataset, mmap=False)
    splits = {name: user_tensors(data.splits[name], config.history_depth) for name in SPLIT_NAMES}
    has_no_click = bool(np.any(data.splits["train"].clicked_pos < 0))
    tic = time.perf_counter()
    model = make_model(data.n_items, has_no_click) if make_model else None
    learner = ReferenceLearner(data.n_items, config, has_no_click, model)
    log = learner.fit(splits["train"], splits["vali"], progress)
    results = {name: learner.evaluate(users) for name, users in splits.items()}
    return {
        "dataset": dataset,
        "config": dataclasses.asdict(config),
        **results,
        "fitted": learner.model.fitted(),
        "has_no_click": has_no_click,
        "train_seconds": time.perf_counter() - tic,
        **log,
    }


def config_for(data_folder: str, dataset: str, **overrides) -> ReferenceConfig:
    """The form of `NAME-truth.npz`'s world (history, L, d) with `overrides` (None: kept)."""
    world, _ = load_truth(paths(data_folder, dataset)["truth"])
    form = {
        "history": world.history,
        "history_lags": world.history_lags,
        "feature_dim": world.feature_dim,
    }
    return ReferenceConfig(**{**form, **{k: v for k, v in overrides.items() if v is not None}})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_folder", default="dropbox")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--out", default="", help="JSON results (default: printed only)")
    parser.add_argument(
        "--history", choices=["mean", "lag"], default=None, help="default: the truth file's world"
    )
    parser.add_argument("--history_lags", type=int, default=None)
    parser.add_argument("--feature_dim", type=int, default=None)
    for field in ("samples", "batch_users", "max_epochs", "patience", "seed"):
        parser.add_argument(f"--{field}", type=int, default=None)
    for field in ("learning_rate", "init_scale"):
        parser.add_argument(f"--{field}", type=float, default=None)
    parser.add_argument("--quiet", action="store_true", help="no line per epoch")
    args = vars(parser.parse_args())
    data_folder, dataset, out, quiet = (
        args.pop(k) for k in ("data_folder", "dataset", "out", "quiet")
    )
    config = config_for(data_folder, dataset, **args)
    print(f"config: {json.dumps(dataclasses.asdict(config))}", flush=True)
    results = run(
        data_folder,
        dataset,
        config,
        progress=(lambda line: None) if quiet else lambda line: print(line, flush=True),
    )
    report(results, out)
    return 0


def report(results: dict, out: str) -> None:
    """Prints `run`'s results by split and writes them to the JSON file `out` (if any)."""
    for split in SPLIT_NAMES:
        r = results[split]
        print(
            f"{split}: loss {r['loss']:.4f}  prec@1 {r['prec1']:.4f}  prec@2 {r['prec2']:.4f}",
            flush=True,
        )
    print(
        f"best epoch {results['best_epoch']} of {results['epochs']}, fitted "
        f"{json.dumps(results['fitted'])}, {results['train_seconds']:.0f} s",
        flush=True,
    )
    if out:
        safe_io.dump_json(out, results)


if __name__ == "__main__":
    sys.exit(main())
