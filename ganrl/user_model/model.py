"""The user model: history encoder + item encoder + utility MLP + softmax choice.

r(s_t, a) = MLP([s_t, e_a]) with ELU hidden layers (`dims`, e.g. 64-64). The first layer's
weight over the concatenation splits into a state part and an item part, which lets the
simulator score many candidates for one state without repeating the state's product.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from ganrl.data.dataset import ItemFeatures
from ganrl.user_model import choice
from ganrl.user_model.encoders import ItemEncoder, make_history_encoder

keras = tf.keras


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a user model (the original code's flag names where they exist).

    Attributes:
      user_model: history encoder, 'PW' or 'LSTM'.
      dims: hidden sizes of the utility MLP, e.g. '64-64'.
      item_dim: width of the item embedding.
      rnn_hidden_dim: LSTM units.
      pw_dim: number of position-weight columns (PW).
      pw_band_size: number of past clicks PW looks at.
      bilinear: add a bilinear state-item term (P s) . e_a to the MLP's utility; an MLP over
        the concatenation [s, e_a] learns multiplicative taste-item interactions slowly.
      dropout: dropout rate on item embeddings and hidden layers while training.
      id_dropout: while training, the share of item occurrences whose identity embedding is
        dropped, so that rare items lean on the shared (dense) features.
      l2_reg: coefficient of the L2 penalty on the weights (the original's MLP regulariser),
        added to the training loss by `regularization_loss`.
    """

    user_model: str = "LSTM"
    dims: str = "64-64"
    item_dim: int = 32
    rnn_hidden_dim: int = 20
    pw_dim: int = 4
    pw_band_size: int = 20
    bilinear: bool = True
    dropout: float = 0.0
    id_dropout: float = 0.0
    l2_reg: float = 0.0

    @property
    def hidden_dims(self) -> list[int]:
        return [int(d) for d in self.dims.split("-") if d]


class UserModel(keras.Model):
    """Reward r(s, a) and softmax choice over a display set (plus an optional no-click).

    The sequence view (training) reads flat batches of events (`EventArrays.flat_batch`);
    the step view (simulation) advances many users' histories one event at a time.
    """

    def __init__(self, item_features: ItemFeatures, config: ModelConfig, has_no_click: bool,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.config = config
        self.n_items = item_features.n_items
        self.has_no_click = has_no_click
        dims = config.hidden_dims
        if not dims:
            raise ValueError(f"dims={config.dims!r}: need at least one hidden layer")
        self.items = ItemEncoder(item_features, config.item_dim, id_dropout=config.id_dropout,
                                 name="items")
        self.history = make_history_encoder(
            config.user_model, config.item_dim, pw_dim=config.pw_dim,
            pw_band_size=config.pw_band_size, rnn_hidden_dim=config.rnn_hidden_dim)
        self.state_layer = keras.layers.Dense(dims[0], name="mlp_0_state")
        self.item_layer = keras.layers.Dense(dims[0], use_bias=False, name="mlp_0_item")
        self.hidden_layers = [keras.layers.Dense(d, activation="elu", name=f"mlp_{i + 1}")
                              for i, d in enumerate(dims[1:])]
        # No bias: a softmax over the display set ignores a shift of every utility (its
        # gradient would be rounding noise that Adam amplifies); the no-click logit, where
        # there is one, carries the offset.
        self.output_layer = keras.layers.Dense(1, use_bias=False, name="utility")
        self.dropout = keras.layers.Dropout(config.dropout)
        self.bilinear = (keras.layers.Dense(config.item_dim, use_bias=False, name="bilinear")
                         if config.bilinear else None)
        self.no_click_logit = (self.add_weight(name="no_click_logit", shape=(),
                                               initializer="zeros")
                               if has_no_click else None)
        # Create every weight now, so checkpoints restore eagerly and nothing builds lazily.
        state = self.history.initial_state(1)
        self.utilities(self.history.state_vector(state), tf.zeros([1, 1], tf.int32))
        self.built = True

    def build(self, input_shape: Any = None) -> None:
        """All weights are created in `__init__`."""
        self.built = True

    # -- Step view (simulator) -------------------------------------------------------------
    def initial_state(self, batch_size: int) -> Any:
        """The empty history of `batch_size` users."""
        return self.history.initial_state(batch_size)

    def update_state(self, state: Any, clicked_item: tf.Tensor, clicked: tf.Tensor) -> Any:
        """Adds `clicked_item [B]` to the histories where `clicked [B]` (bool) is True."""
        embedding = self.items(tf.maximum(clicked_item, 0))
        return self.history.update(state, embedding, tf.cast(clicked, tf.bool))

    def state_vector(self, state: Any) -> tf.Tensor:
        """`[B, S]` encoded history."""
        return self.history.state_vector(state)

    def item_embeddings(self, items: tf.Tensor) -> tf.Tensor:
        """items `[...]` -> `[..., item_dim]`."""
        return self.items(items)

    def utilities(self, state_vector: tf.Tensor, items: tf.Tensor, training: bool = False
                  ) -> tf.Tensor:
        """r(s, a) for `state_vector [B, ..., S]` and `items [B, ..., N]` -> `[B, ..., N]`."""
        item_embeddings = self.dropout(self.items(items, training=training), training=training)
        hidden = tf.nn.elu(self.state_layer(state_vector)[..., None, :]
                           + self.item_layer(item_embeddings))
        for layer in self.hidden_layers:
            hidden = layer(self.dropout(hidden, training=training))
        utility = tf.squeeze(self.output_layer(hidden), -1)
        if self.bilinear is not None:
            utility += tf.reduce_sum(self.bilinear(state_vector)[..., None, :] * item_embeddings,
                                     axis=-1)
        return utility

    def choice_logits(self, utilities: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """`[..., N]` utilities and mask -> `[..., N + 1]` logits, last = no-click."""
        return choice.choice_logits(utilities, mask, self.no_click_logit)

    # -- Sequence view (training) ----------------------------------------------------------
    def event_utilities(self, batch: dict, training: bool = False) -> tf.Tensor:
        """`[N, D]` utilities of every displayed item, each from the state before its event.

        `batch` is a flat batch (`EventArrays.flat_batch`): `display [N, D]`,
        `display_mask [N, D]`, `clicked_pos [N]`, `event_mask [N]`, `event_user [N]`,
        `clicks_before [N]`, `click_items [B, C]`, `click_mask [B, C]`.
        """
        click_embeddings = self.dropout(self.items(batch["click_items"], training=training),
                                        training=training)
        states = self.history.sequence_states(click_embeddings, batch["click_mask"],
                                              batch["event_user"], batch["clicks_before"])
        return self.utilities(states, batch["display"], training=training)

    def regularization_loss(self) -> tf.Tensor:
        """l2_reg * (sum of squared weights); 0 when l2_reg is 0."""
        if not self.config.l2_reg:
            return tf.constant(0.0)
        return self.config.l2_reg * tf.add_n(
            [tf.reduce_sum(tf.square(v)) for v in self.trainable_variables])

    def call(self, batch: dict, training: bool = False) -> tf.Tensor:
        """`[N, D + 1]` choice logits of every event of a flat batch."""
        return self.choice_logits(self.event_utilities(batch, training=training),
                                  batch["display_mask"])


def checkpoint_variables(**parts: Any) -> dict[str, tf.Variable]:
    """Named variables of models and optimisers, for `tf.train.Checkpoint(**...)`.

    Keras 3 layers kept in Python lists are invisible to `tf.train.Checkpoint`'s object graph,
    so checkpoints name every variable explicitly: `{part}_{index}` in the (deterministic)
    order of `model.weights` or `optimizer.variables`. Optimisers must be built first.
    """
    out = {}
    for part, obj in parts.items():
        variables = obj.weights if isinstance(obj, keras.Model) else obj.variables
        for index, var in enumerate(variables):
            out[f"{part}_{index:03d}"] = var
    return out
