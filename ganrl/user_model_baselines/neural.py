"""Neural baselines in TensorFlow: S-RNN (a GRU session model), DeepFM and W&D-CCF.

- `SessionRNN` (S-RNN): a GRU reads the user's earlier clicks, one item embedding per event
  (a "no click" token for events without one); the state before event t, projected, scores
  each displayed item by a dot product with its output embedding plus a bias, and a softmax
  over the display set is trained by maximum likelihood.
- `DeepFM` (DFM, Guo et al. 2017): fields = the item id, the user's last click and each pair
  feature (`ganrl.user_model_baselines.features`, a field vector scaled by the value); a
  factorisation machine (first-order weights and pairwise field interactions) plus an MLP over
  the fields, trained point-wise (sigmoid cross-entropy: clicked or not).
- `WideDeepCCF` (W&D-CCF): wide = linear in the pair features plus an item bias; deep = an MLP
  over the item embedding, the mean embedding of the user's recent clicks, their product and
  the pair features; the utility wide + deep is trained with collaborative competitive
  filtering, a softmax over the display set (the user picks one displayed item).

Item embeddings start at zero, so an item never shown in training keeps a zero embedding and
bias and adds no noise. Softmax objectives add a learned no-click utility only when the
training data has no-click events (`ganrl.user_model.choice`). Training draws fixed-size
batches (the last batch of an epoch is filled from the epoch's start), so `tf.function`
traces once.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from ganrl.data.dataset import EventArrays, ItemFeatures
from ganrl.metrics import precision_at_k
from ganrl.user_model.choice import choice_logits, entropy_regularised_loss
from ganrl.user_model_baselines.base import Scorer
from ganrl.user_model_baselines.features import (
    MAX_BLOCK,
    PairFeaturizer,
    Standardizer,
    event_users,
    recent_clicks,
)

keras = tf.keras

STOP_CRITERIA = ("loss", "prec1")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How a neural baseline trains.

    Attributes:
      max_epochs: at most this many passes over the training rows.
      batch_size: rows (users or events) per step.
      learning_rate: Adam step size.
      weight_decay: decoupled weight decay of Adam.
      holdout_fraction: share of the training users held out to pick the epoch (early
        stopping on their loss; the weights of the best epoch are kept). With fewer than
        `MIN_HOLDOUT_USERS` held-out users, all users train for `max_epochs`.
      patience: stop after this many epochs without a better held-out criterion.
      stop_on: the held-out criterion, 'loss' or 'prec1' (prec@1 with shared ties).
    """

    max_epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 0.003
    weight_decay: float = 1e-4
    holdout_fraction: float = 0.2
    patience: int = 5
    stop_on: str = "loss"

    def __post_init__(self):
        if self.stop_on not in STOP_CRITERIA:
            raise ValueError(f"stop_on={self.stop_on!r}: expected one of {STOP_CRITERIA}")


MIN_HOLDOUT_USERS = 5


def holdout_users(n_users: int, fraction: float, seed: int) -> np.ndarray:
    """`[U]` bool: the users held out for early stopping (none if fewer than
    `MIN_HOLDOUT_USERS` would be, or if no user would be left to train on)."""
    n_out = int(round(fraction * n_users))
    held = np.zeros(n_users, dtype=bool)
    if n_out >= MIN_HOLDOUT_USERS and n_out < n_users:
        held[np.random.default_rng(seed).permutation(n_users)[:n_out]] = True
    return held


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of `min(batch_size, n)`-row batches over a permutation of `n` rows; the last
    batch is completed with the permutation's first rows, so every batch has the same size."""
    size = min(batch_size, n)
    order = rng.permutation(n)
    n_batches = -(-n // size)
    order = np.concatenate([order, order[: n_batches * size - n]])
    return list(order.reshape(n_batches, size))


@dataclasses.dataclass
class FitHistory:
    """Mean training loss and held-out criterion (loss, or -prec@1; NaN without hold-out) of
    each epoch run, and the epoch (1-based) whose weights were kept."""

    train_loss: list[float]
    holdout: list[float]
    best_epoch: int


def holdout_precision(utilities: np.ndarray, batch: dict) -> float:
    """Mean prec@1 of `utilities [..., D]` over the batch's real events with a click."""
    events = np.asarray(batch.get("event_mask", np.ones(batch["clicked_pos"].shape, bool)))
    values = precision_at_k(
        utilities[events],
        np.asarray(batch["display_mask"])[events],
        np.asarray(batch["clicked_pos"])[events],
        1,
    )
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else 0.0


def fit_model(
    model: keras.Model,
    utilities_fn: Callable[[dict], tf.Tensor],
    loss_fn: Callable[[tf.Tensor, dict], tf.Tensor],
    arrays: dict[str, np.ndarray],
    held_out: np.ndarray,
    config: FitConfig,
    seed: int,
    extra_variables: tuple[tf.Variable, ...] = (),
) -> FitHistory:
    """Trains `model` (and `extra_variables`) with Adam on the mean loss
    `loss_fn(utilities_fn(batch), batch)`.

    Args:
      model: the Keras model (its variables are built by a first eager call).
      utilities_fn: a dict of `[rows, ...]` tensors -> `[rows, (T,) D]` utilities.
      loss_fn: (utilities, batch) -> scalar mean loss.
      arrays: the training rows (users or events), as numpy arrays with a leading row axis;
        `display_mask`, `clicked_pos` (and `event_mask` for rows of users) among them.
      held_out: `[rows]` bool, rows kept out of training whose loss picks the epoch.
      config: epochs, batches, optimiser and early stopping.
      seed: orders the batches.
      extra_variables: trained variables outside `model`.

    Raises:
      FloatingPointError: the training loss became NaN or infinite.
    """
    rng = np.random.default_rng(seed)
    train = {k: v[~held_out] for k, v in arrays.items()}
    holdout = {k: tf.constant(v[held_out]) for k, v in arrays.items()} if held_out.any() else None
    n = int((~held_out).sum())
    optimizer = keras.optimizers.Adam(
        config.learning_rate, weight_decay=config.weight_decay or None
    )

    def batch_loss(batch):
        return loss_fn(utilities_fn(batch), batch)

    batch_loss({k: tf.constant(v[: min(config.batch_size, n)]) for k, v in train.items()})
    variables = list(model.trainable_variables) + list(extra_variables)
    optimizer.build(variables)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = batch_loss(batch)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    evaluate = tf.function(batch_loss if config.stop_on == "loss" else utilities_fn)
    history = FitHistory([], [], 0)
    best_value, best_weights = np.inf, None
    for epoch in range(1, config.max_epochs + 1):
        losses = [
            float(step({k: tf.constant(v[rows]) for k, v in train.items()}))
            for rows in epoch_batches(n, config.batch_size, rng)
        ]
        history.train_loss.append(float(np.mean(losses)))
        if not np.isfinite(history.train_loss[-1]):
            raise FloatingPointError(
                f"{type(model).__name__}: training loss became "
                f"{history.train_loss[-1]} at epoch {epoch}"
            )
        if holdout is None:
            history.holdout.append(float("nan"))
            history.best_epoch = epoch
            continue
        value = evaluate(holdout).numpy()
        history.holdout.append(
            float(value) if config.stop_on == "loss" else -holdout_precision(value, holdout)
        )
        if history.holdout[-1] < best_value:
            best_value, history.best_epoch = history.holdout[-1], epoch
            best_weights = [v.numpy() for v in variables]
        elif epoch - history.best_epoch >= config.patience:
            break
    if best_weights is not None:
        for variable, value in zip(variables, best_weights):
            variable.assign(value)
    return history


def softmax_choice_loss(
    utilities: tf.Tensor,
    display_mask: tf.Tensor,
    clicked_pos: tf.Tensor,
    event_mask: tf.Tensor,
    no_click_logit: tf.Tensor | None,
) -> tf.Tensor:
    """Mean negative log-likelihood of the clicks under a softmax over each display set.

    Args:
      utilities: `[..., D]`; display_mask `[..., D]`; clicked_pos `[...]` (-1 no click);
        event_mask `[...]`; no_click_logit: scalar, or None to condition on a click.
    """
    logits = choice_logits(utilities, display_mask, no_click_logit)
    if no_click_logit is None:  # events without a click carry no choice among the items
        event_mask = event_mask & (clicked_pos >= 0)
    info = entropy_regularised_loss(logits, clicked_pos, event_mask)
    return info.loss / tf.maximum(info.events, 1.0)


def no_click_utility(train: EventArrays) -> tf.Variable | None:
    """A learned scalar utility of clicking nothing when `train` has no-click events, else
    None (the softmax then conditions on a click)."""
    return tf.Variable(0.0, name="no_click_utility") if (train.clicked_pos < 0).any() else None


def variables_of(value: tf.Variable | None) -> tuple[tf.Variable, ...]:
    return () if value is None else (value,)


def seeded(initializer: type, seed: int, **kwargs) -> keras.initializers.Initializer:
    return initializer(seed=seed, **kwargs)


def mlp(units: tuple[int, ...], seed: int, name: str) -> keras.Sequential:
    """ReLU layers of `units`, then one linear output unit."""
    layers = [
        keras.layers.Dense(
            u,
            activation="relu",
            name=f"{name}_{i}",
            kernel_initializer=seeded(keras.initializers.GlorotUniform, seed + i),
        )
        for i, u in enumerate(units)
    ]
    layers.append(
        keras.layers.Dense(
            1,
            name=f"{name}_out",
            kernel_initializer=seeded(keras.initializers.GlorotUniform, seed + len(units)),
        )
    )
    return keras.Sequential(layers, name=name)


# -- S-RNN --------------------------------------------------------------------------------------
class SessionRNNModel(keras.Model):
    """Utilities `[B, T, D]` of the displayed items from the users' earlier clicks."""

    def __init__(self, n_items: int, embedding_dim: int, hidden_dim: int, seed: int):
        super().__init__()
        self.n_items = n_items
        # Tokens: items 0..n-1, n = no click, n+1 = start of the sequence.
        self.input_embedding = keras.layers.Embedding(
            n_items + 2,
            embedding_dim,
            embeddings_initializer=seeded(keras.initializers.RandomNormal, seed, stddev=0.05),
        )
        self.gru = keras.layers.GRU(
            hidden_dim,
            return_sequences=True,
            kernel_initializer=seeded(keras.initializers.GlorotUniform, seed + 1),
            recurrent_initializer=seeded(keras.initializers.Orthogonal, seed + 2),
        )
        self.project = keras.layers.Dense(
            embedding_dim, kernel_initializer=seeded(keras.initializers.GlorotUniform, seed + 3)
        )
        self.output_embedding = keras.layers.Embedding(
            n_items, embedding_dim, embeddings_initializer="zeros"
        )
        self.output_bias = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros")

    def previous_tokens(self, display: tf.Tensor, clicked_pos: tf.Tensor) -> tf.Tensor:
        """`[B, T]` input token of each step: the click of the step before (start at t=0)."""
        clicked = tf.gather(display, tf.maximum(clicked_pos, 0), batch_dims=2)
        tokens = tf.where(clicked_pos >= 0, clicked, self.n_items)
        start = tf.fill(tf.shape(tokens[:, :1]), self.n_items + 1)
        return tf.concat([start, tokens[:, :-1]], axis=1)

    def call(self, display: tf.Tensor, clicked_pos: tf.Tensor) -> tf.Tensor:
        # Padded steps come after a user's real ones, so they never reach a real step's state.
        states = self.gru(self.input_embedding(self.previous_tokens(display, clicked_pos)))
        query = self.project(states)  # [B, T, k]
        items = self.output_embedding(display)  # [B, T, D, k]
        return tf.einsum("btk,btdk->btd", query, items) + tf.squeeze(self.output_bias(display), -1)


class SessionRNN(Scorer):
    """S-RNN: a GRU over the user's earlier clicks, softmax over the display set.

    Args:
      embedding_dim: size of the item embeddings (input and output).
      hidden_dim: GRU state size.
      max_events: training keeps each user's last this many events.
      max_block: at most about this many floats in one scoring block's item embeddings
        (`[users, T, D, embedding_dim]`).
      **fit_options: `FitConfig` fields (a batch is `batch_size` users).
    """

    default_fit = FitConfig(batch_size=64, learning_rate=0.005)

    def __init__(
        self,
        embedding_dim: int = 32,
        hidden_dim: int = 32,
        max_events: int = 50,
        max_block: int = MAX_BLOCK,
        **fit_options,
    ):
        self.embedding_dim, self.hidden_dim = embedding_dim, hidden_dim
        self.max_events, self.max_block = max_events, max_block
        self.fit_config = dataclasses.replace(self.default_fit, **fit_options)

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.model = SessionRNNModel(train.n_items, self.embedding_dim, self.hidden_dim, seed)
        no_click = no_click_utility(train)
        steps = int(min(self.max_events, max(int(train.events_per_user.max()), 1)))
        arrays = train.user_batch(np.arange(train.n_users), max_events=steps)

        def utilities_fn(batch):
            return self.model(batch["display"], batch["clicked_pos"])

        def loss_fn(utilities, batch):
            return softmax_choice_loss(
                utilities,
                batch["display_mask"],
                batch["clicked_pos"],
                batch["event_mask"],
                no_click,
            )

        held_out = holdout_users(train.n_users, self.fit_config.holdout_fraction, seed)
        self.history = fit_model(
            self.model,
            utilities_fn,
            loss_fn,
            arrays,
            held_out,
            self.fit_config,
            seed,
            variables_of(no_click),
        )

    def score(self, events: EventArrays) -> np.ndarray:
        out = []
        longest = max(int(events.events_per_user.max()) if events.n_users else 1, 1)
        users = max(1, self.max_block // (longest * events.max_display * self.embedding_dim))
        users = min(users, max(events.n_users, 1))
        # Blocks of the same shape (the last one padded with repeated users): one trace.
        utilities_fn = tf.function(self.model)
        for start in range(0, events.n_users, users):  # blocks of users bound the memory
            real = np.arange(start, min(start + users, events.n_users))
            rows = np.concatenate([real, np.full(users - len(real), real[-1])])
            batch = events.user_batch(rows, max_events=longest)
            utilities = utilities_fn(
                tf.constant(batch["display"]), tf.constant(batch["clicked_pos"])
            ).numpy()
            keep = batch["event_mask"][: len(real)]
            out.append(utilities[: len(real)][keep])  # events in order, user by user
        return (np.concatenate(out) if out else np.zeros(events.display.shape)).astype(np.float64)


# -- Event-level models: DeepFM and W&D-CCF -----------------------------------------------------
class EventScorer(Scorer):
    """Shared set-up of scorers trained on events with standardised pair features.

    Subclasses build `self.model` (called as `model(inputs) -> [B, D]` utilities) in
    `build_model` and define `loss(model_out, batch)`.

    Args:
      embedding_dim: size of the item embeddings (factors).
      hidden: widths of the MLP's hidden layers.
      score_events: events per scoring block.
      clicked_only: point-wise losses learn from the events with a click only (as
        `ganrl.user_model_baselines.tabular` explains); a softmax loss uses every event.
      **fit_options: `FitConfig` fields (a batch is `batch_size` events).
    """

    history_clicks = 10
    default_fit = FitConfig()
    # Whether the loss is a softmax over the display set (which then may need a no-click
    # option); a point-wise loss treats a no-click event's items as negatives.
    softmax_choice = True

    def __init__(
        self,
        embedding_dim: int = 16,
        hidden: tuple[int, ...] = (64, 32),
        score_events: int = 4096,
        clicked_only: bool = True,
        **fit_options,
    ):
        self.embedding_dim, self.hidden = embedding_dim, tuple(hidden)
        self.score_events, self.clicked_only = score_events, clicked_only
        self.fit_config = dataclasses.replace(self.default_fit, **fit_options)

    def inputs(
        self, events: EventArrays, features: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Model inputs of every event: `features [E, D, F]` (standardised), `display`,
        `display_mask`, `history [E, K]` (recent clicks, -1 padded) and `clicked_pos`
        (`features`: the events' pair features when already computed)."""
        features = self.featurizer(events) if features is None else features
        return {
            "features": self.standardize(features),
            "display": np.asarray(events.display, dtype=np.int32),
            "display_mask": np.asarray(events.display_mask, dtype=bool),
            "history": recent_clicks(events, self.history_clicks).astype(np.int32),
            "clicked_pos": np.asarray(events.clicked_pos, dtype=np.int32),
        }

    def build_model(self, n_items: int, n_features: int, seed: int) -> keras.Model:
        raise NotImplementedError

    def loss(self, utilities: tf.Tensor, batch: dict) -> tf.Tensor:
        raise NotImplementedError

    def fit(self, train: EventArrays, item_features: ItemFeatures, seed: int) -> None:
        self.featurizer = PairFeaturizer.from_item_features(train, item_features, seed)
        features = self.featurizer(train)
        self.standardize = Standardizer.fit(features, train.display_mask)
        arrays = self.inputs(train, features)
        self.no_click = no_click_utility(train) if self.softmax_choice else None
        self.model = self.build_model(train.n_items, features.shape[-1], seed)
        held_out = holdout_users(train.n_users, self.fit_config.holdout_fraction, seed)[
            event_users(train)
        ]
        if self.clicked_only and not self.softmax_choice:
            keep = train.clicked_pos >= 0
            arrays, held_out = {k: v[keep] for k, v in arrays.items()}, held_out[keep]
        self.history = fit_model(
            self.model,
            self.model,
            self.loss,
            arrays,
            held_out,
            self.fit_config,
            seed,
            variables_of(self.no_click),
        )

    def score(self, events: EventArrays) -> np.ndarray:
        arrays = self.inputs(events)
        out = [
            self.model(
                {k: tf.constant(v[start : start + self.score_events]) for k, v in arrays.items()}
            ).numpy()
            for start in range(0, events.n_events, self.score_events)
        ]
        return (np.concatenate(out) if out else np.zeros(events.display.shape)).astype(np.float64)


class DeepFMModel(keras.Model):
    """DeepFM utilities `[B, D]`: first-order + pairwise field interactions + MLP."""

    def __init__(
        self, n_items: int, n_features: int, embedding_dim: int, hidden: tuple[int, ...], seed: int
    ):
        super().__init__()
        self.n_items = n_items
        # Index n_items of the last-click tables means "no earlier click".
        self.item_factors = keras.layers.Embedding(
            n_items, embedding_dim, embeddings_initializer="zeros"
        )
        self.last_factors = keras.layers.Embedding(
            n_items + 1, embedding_dim, embeddings_initializer="zeros"
        )
        self.item_weight = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros")
        self.last_weight = keras.layers.Embedding(n_items + 1, 1, embeddings_initializer="zeros")
        self.feature_factors = self.add_weight(
            shape=(n_features, embedding_dim),
            name="feature_factors",
            initializer=seeded(keras.initializers.RandomNormal, seed, stddev=0.1),
        )
        self.feature_weight = keras.layers.Dense(1, kernel_initializer="zeros")
        self.deep = mlp(hidden, seed + 1, "deep")

    def call(self, inputs: dict) -> tf.Tensor:
        display, features = inputs["display"], inputs["features"]
        last = inputs["history"][:, 0]
        last = tf.where(last >= 0, last, self.n_items)
        width = tf.shape(display)[1]
        last_items = tf.tile(last[:, None], [1, width])  # [B, D]
        fields = tf.concat(
            [
                self.item_factors(display)[:, :, None],
                self.last_factors(last_items)[:, :, None],
                features[..., None] * self.feature_factors,
            ],
            axis=2,
        )  # [B, D, Fd, k]
        summed = tf.reduce_sum(fields, axis=2)
        pairwise = 0.5 * tf.reduce_sum(
            tf.square(summed) - tf.reduce_sum(tf.square(fields), axis=2), axis=-1
        )
        first = (
            tf.squeeze(self.item_weight(display), -1)
            + tf.squeeze(self.last_weight(last_items), -1)
            + tf.squeeze(self.feature_weight(features), -1)
        )
        flat = tf.reshape(
            fields, tf.concat([tf.shape(display), [fields.shape[2] * fields.shape[3]]], 0)
        )
        return first + pairwise + tf.squeeze(self.deep(flat), -1)


class DeepFM(EventScorer):
    """DFM: DeepFM trained point-wise (is this displayed item clicked?)."""

    softmax_choice = False

    def build_model(self, n_items: int, n_features: int, seed: int) -> keras.Model:
        return DeepFMModel(n_items, n_features, self.embedding_dim, self.hidden, seed)

    def loss(self, utilities: tf.Tensor, batch: dict) -> tf.Tensor:
        mask = tf.cast(batch["display_mask"], tf.float32)
        labels = tf.cast(
            tf.equal(tf.range(tf.shape(utilities)[1])[None, :], batch["clicked_pos"][:, None]),
            tf.float32,
        )
        per_item = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=utilities)
        return tf.reduce_sum(per_item * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class WideDeepModel(keras.Model):
    """Wide-and-deep utilities `[B, D]` of the displayed items."""

    def __init__(self, n_items: int, embedding_dim: int, hidden: tuple[int, ...], seed: int):
        super().__init__()
        self.n_items = n_items
        self.item_embedding = keras.layers.Embedding(
            n_items, embedding_dim, embeddings_initializer="zeros"
        )
        self.item_bias = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros")
        self.wide = keras.layers.Dense(1, kernel_initializer="zeros")
        self.deep = mlp(hidden, seed, "deep")

    def call(self, inputs: dict) -> tf.Tensor:
        display, features, history = inputs["display"], inputs["features"], inputs["history"]
        known = tf.cast(history >= 0, tf.float32)[..., None]  # [B, K, 1]
        clicked = self.item_embedding(tf.maximum(history, 0)) * known
        user = tf.reduce_sum(clicked, 1) / tf.maximum(tf.reduce_sum(known, 1), 1.0)  # [B, k]
        items = self.item_embedding(display)  # [B, D, k]
        user = user[:, None, :] * tf.ones_like(items[..., :1])  # [B, D, k]
        deep_in = tf.concat([items, user, items * user, features], axis=-1)
        wide = tf.squeeze(self.wide(features), -1) + tf.squeeze(self.item_bias(display), -1)
        return wide + tf.squeeze(self.deep(deep_in), -1)


class WideDeepCCF(EventScorer):
    """W&D-CCF: wide-and-deep utilities, softmax over the display set (collaborative
    competitive filtering)."""

    def build_model(self, n_items: int, n_features: int, seed: int) -> keras.Model:
        return WideDeepModel(n_items, self.embedding_dim, self.hidden, seed)

    def loss(self, utilities: tf.Tensor, batch: dict) -> tf.Tensor:
        event_mask = tf.ones_like(batch["clicked_pos"], dtype=tf.bool)
        return softmax_choice_loss(
            utilities, batch["display_mask"], batch["clicked_pos"], event_mask, self.no_click
        )
