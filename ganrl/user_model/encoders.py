"""Item and history encoders of the user model.

`ItemEncoder` turns item ids into vectors: the one-hot identity as an embedding lookup (never
a dense one-hot matmul) plus a projection of any dense side features.

History encoders share one interface (`HistoryEncoder`) with two views of the same weights:
- a sequence view for training, `sequence_states(click_embeddings, click_mask)`, which gives
  for every event t the state s_t built from the clicks *before* t;
- a step view for simulation, `initial_state` / `update` / `state_vector`, which advances many
  users by one event at a time.
A new encoder is a new class registered in `HISTORY_ENCODERS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ganrl.data.dataset import ItemFeatures

keras = tf.keras


class ItemEncoder(keras.layers.Layer):
    """Item id -> `[embed_dim]` vector: identity embedding plus projected side features.

    With `id_dropout` or `display_counts` (of the training users), a learned fallback vector
    stands in for the identity embedding of items never shown in training and, while
    training, for a random share of item occurrences: `id_dropout` of them, or, with counts,
    id_dropout * a / (a + d) for an item shown in d training display sets (a =
    `count_scale`). Rare items then lean on the shared features instead of an embedding that
    memorised a few clicks, while frequent items keep theirs.

    The dropout draws come from a Keras `SeedGenerator`, whose state is a variable (in
    `model.variables`, not `model.weights`) that a resumable checkpoint saves, so a resumed
    run continues the stream instead of restarting it.
    """

    def __init__(self, item_features: ItemFeatures, embed_dim: int, id_dropout: float = 0.0,
                 display_counts: np.ndarray | None = None, count_scale: float = 5.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.n_items = item_features.n_items
        self.id_dropout = id_dropout
        self.embed_dim = embed_dim
        self.identity = None
        self.fallback = None
        if item_features.identity:
            self.identity = keras.layers.Embedding(
                self.n_items, embed_dim,
                embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05),
                name="identity")
            if display_counts is not None or id_dropout > 0:
                self.fallback = self.add_weight(name="fallback", shape=(embed_dim,),
                                                initializer="zeros")
        self.dropout_seed = (keras.random.SeedGenerator(name="id_dropout_seed")
                             if self.fallback is not None and id_dropout > 0 else None)
        self._seen = self._drop_rate = None
        if display_counts is not None:
            counts = np.asarray(display_counts, dtype=np.float32)
            self._seen = tf.constant(counts > 0)
            self._drop_rate = tf.constant(id_dropout * count_scale / (count_scale + counts))
        self.side = None
        if item_features.dense is not None:
            self._side_table = tf.constant(item_features.dense, dtype=tf.float32)
            self.side = keras.layers.Dense(embed_dim, name="side")
        if self.identity is None and self.side is None:
            raise ValueError("item features have neither an identity nor dense columns")

    def call(self, items: tf.Tensor, training: bool = False) -> tf.Tensor:
        """items `[...]` int -> `[..., embed_dim]`."""
        out = 0.0
        if self.identity is not None:
            out = self.identity(items)
            if self.fallback is not None:
                use_identity = tf.ones(tf.shape(items), tf.bool)
                if self._seen is not None:
                    use_identity = tf.gather(self._seen, items)
                if training and self.id_dropout > 0:
                    rate = (self.id_dropout if self._drop_rate is None
                            else tf.gather(self._drop_rate, items))
                    use_identity &= keras.random.uniform(
                        tf.shape(items), seed=self.dropout_seed) >= rate
                out = tf.where(use_identity[..., None], out, self.fallback)
        if self.side is not None:
            out = out + self.side(tf.gather(self._side_table, items))
        return out


def gather_click_window(click_embeddings: tf.Tensor, event_user: tf.Tensor,
                        clicks_before: tf.Tensor, width: int) -> tf.Tensor:
    """The embeddings of each event's last `width` clicks, most recent first.

    Args:
      click_embeddings: `[B, C, E]` each user's clicked items in order.
      event_user: `[N]` the user (row of `click_embeddings`) of each event.
      clicks_before: `[N]` how many of that user's clicks precede the event.
      width: how many clicks to look back.

    Returns:
      `[N, width, E]`; rows before the user's first click are zeros.
    """
    rows = clicks_before[:, None] - 1 - tf.range(width)[None, :]
    users = tf.broadcast_to(event_user[:, None], tf.shape(rows))
    window = tf.gather_nd(click_embeddings, tf.stack([users, tf.maximum(rows, 0)], axis=-1))
    return window * tf.cast(rows >= 0, window.dtype)[..., None]


class HistoryEncoder(keras.layers.Layer):
    """Interface of a history encoder; see the module docstring."""

    state_dim: int

    def sequence_states(self, click_embeddings: tf.Tensor, click_mask: tf.Tensor,
                        event_user: tf.Tensor, clicks_before: tf.Tensor) -> tf.Tensor:
        """The state before each event, from the clicks that precede it.

        Args:
          click_embeddings: `[B, C, E]` each user's clicked items in order (padded).
          click_mask: `[B, C]` bool, True on real clicks (padding only at the end).
          event_user: `[N]` int32, the user of each event.
          clicks_before: `[N]` int32, how many of its user's clicks precede each event.

        Returns:
          `[N, state_dim]`.
        """
        raise NotImplementedError

    def initial_state(self, batch_size: int) -> Any:
        """The state of `batch_size` users with empty histories."""
        raise NotImplementedError

    def update(self, state: Any, click_embedding: tf.Tensor, clicked: tf.Tensor) -> Any:
        """Adds `click_embedding [B, E]` to the histories where `clicked [B]` is True."""
        raise NotImplementedError

    def state_vector(self, state: Any) -> tf.Tensor:
        """`[B, state_dim]` encoding of `state`."""
        raise NotImplementedError


class PositionWeightEncoder(HistoryEncoder):
    """Position weighting (the paper's PW): s_t = vec[sigmoid(F W + B)].

    F `[E, m]` holds the embeddings of the last m = `band_size` clicks (most recent first, zeros
    where the history is shorter), W `[m, pw_dim]` learned position weights and B `[E, pw_dim]`
    a learned bias, so state_dim = E * pw_dim.
    """

    def __init__(self, embed_dim: int, band_size: int, pw_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.embed_dim, self.band_size, self.pw_dim = embed_dim, band_size, pw_dim
        self.state_dim = embed_dim * pw_dim
        self.position_weights = self.add_weight(
            name="position_weights", shape=(band_size, pw_dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / np.sqrt(band_size)))
        self.bias = self.add_weight(name="bias", shape=(embed_dim, pw_dim), initializer="zeros")

    def _encode(self, window: tf.Tensor) -> tf.Tensor:
        """window `[..., m, E]` -> `[..., E * pw_dim]`."""
        mixed = tf.einsum("...me,mn->...en", window, self.position_weights) + self.bias
        flat_shape = tf.concat([tf.shape(window)[:-2], [self.state_dim]], axis=0)
        return tf.reshape(tf.sigmoid(mixed), flat_shape)

    def sequence_states(self, click_embeddings, click_mask, event_user, clicks_before):
        return self._encode(gather_click_window(click_embeddings, event_user, clicks_before,
                                                self.band_size))

    def initial_state(self, batch_size):
        return tf.zeros([batch_size, self.band_size, self.embed_dim])

    def update(self, state, click_embedding, clicked):
        shifted = tf.concat([click_embedding[:, None, :], state[:, :-1, :]], axis=1)
        return tf.where(clicked[:, None, None], shifted, state)

    def state_vector(self, state):
        return self._encode(state)


class LSTMEncoder(HistoryEncoder):
    """An LSTM over the clicked items' embeddings; the state at event t is its output after
    the last click before t (zeros before the first click)."""

    def __init__(self, embed_dim: int, hidden_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.state_dim = hidden_dim
        self.lstm = keras.layers.LSTM(hidden_dim, return_sequences=True, name="lstm")
        self.lstm.build((None, None, embed_dim))

    def sequence_states(self, click_embeddings, click_mask, event_user, clicks_before):
        # Padding is trailing only and the LSTM is causal, so the outputs gathered below (at
        # real clicks) are the same without the mask, and the padded steps' outputs are never
        # gathered (no gradient reaches them): running unmasked saves the per-step mask
        # selects (same outputs and gradients, 30-45% faster here).
        del click_mask
        outputs = self.lstm(click_embeddings)
        (previous,) = tf.unstack(gather_click_window(outputs, event_user, clicks_before, 1),
                                 axis=1)
        return previous

    def initial_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.hidden_dim])
        return (zeros, zeros)

    def update(self, state, click_embedding, clicked):
        _, (h, c) = self.lstm.cell(click_embedding, list(state))
        keep = clicked[:, None]
        return (tf.where(keep, h, state[0]), tf.where(keep, c, state[1]))

    def state_vector(self, state):
        return state[0]


def make_history_encoder(name: str, embed_dim: int, *, pw_dim: int, pw_band_size: int,
                         rnn_hidden_dim: int) -> HistoryEncoder:
    """Builds the encoder registered as `name` (case-insensitive: 'PW' or 'LSTM')."""
    builders = {
        "PW": lambda: PositionWeightEncoder(embed_dim, pw_band_size, pw_dim, name="history"),
        "LSTM": lambda: LSTMEncoder(embed_dim, rnn_hidden_dim, name="history"),
    }
    key = name.upper()
    if key not in builders:
        raise ValueError(f"unknown user_model {name!r}: expected one of {sorted(builders)}")
    return builders[key]()


HISTORY_ENCODERS = ("PW", "LSTM")
