"""A trained user model seen as a choice model (RecSim's `AbstractChoiceModel`).

Everything outside training that asks a user model a question goes through `ChoiceModel`:
the simulator (click sampling, click probabilities, rewards, the best slate), the policies
that score candidates with the learned reward, `LoadedUserModel.score`, the SavedModel
export and the trainer's evaluation. It owns the one replay of a click history into the
model's state (`replay`), so that there is one answer to "what state does this history
lead to".

A state is whatever `UserModel.initial_state` returns (a nest of tensors whose leaves all
start with the batch dimension `B`). Shapes: `N` items of a display set (or candidates),
options `N + 1` with the last the no-click option.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from ganrl.user_model.model import UserModel


class ChoiceModel:
    """Utilities, choice log-probabilities, click sampling and top-k of a `UserModel`.

    Args:
      model: the trained user model (its reward r or its behaviour phi).
    """

    def __init__(self, model: UserModel):
        self.model = model

    @property
    def has_no_click(self) -> bool:
        return bool(self.model.has_no_click)

    # -- States -------------------------------------------------------------------------------
    def initial_state(self, batch_size: int | tf.Tensor) -> Any:
        """The empty histories of `batch_size` users."""
        return self.model.initial_state(batch_size)

    def update(
        self,
        state: Any,
        clicked_item: tf.Tensor,
        clicked: tf.Tensor,
        display: tf.Tensor | None = None,
        display_mask: tf.Tensor | None = None,
    ) -> Any:
        """One event of every user: `clicked_item [B]` joins the history where
        `clicked [B]`; `display [B, N]` (with `display_mask`) is the set shown, if known."""
        return self.model.update_state(
            state, clicked_item, clicked, display=display, display_mask=display_mask
        )

    def replay(self, clicks: tf.Tensor, state: Any = None) -> Any:
        """The state after each user's clicks, oldest first.

        Args:
          clicks: `[B, T]` int clicked items in the order they were clicked, -1 on padding
            (anywhere: a padded slot leaves that user's state as it was).
          state: the state to start from (default: empty histories).

        Returns:
          the state after the clicks (no display sets: each counts as a click alone).
        """
        clicks = tf.convert_to_tensor(clicks, tf.int32)
        if state is None:
            state = self.initial_state(tf.shape(clicks)[0])

        def step(t, state):  # one column, vectorised over users
            items = tf.gather(clicks, t, axis=1)
            real = items >= 0
            stepped = self.update(state, tf.maximum(items, 0), real)
            return tf.nest.map_structure(
                lambda new, old: where_rows(real, new, old), stepped, state
            )

        return _fold(step, tf.range(tf.shape(clicks)[1]), state)

    def replay_recent_first(self, history: tf.Tensor) -> Any:
        """`replay` of a policy observation's `[B, H]` history (most recent first, -1
        padded)."""
        return self.replay(tf.reverse(tf.convert_to_tensor(history, tf.int32), axis=[1]))

    def replay_events(self, history: tf.Tensor, events: tf.Tensor | None) -> Any:
        """The state of a policy observation: its click `history [B, H]` (most recent
        first, -1 padded) and its recent display sets `events [B, E, 1 + D]`
        (`Observation.events`; None: the history alone, `replay_recent_first`).

        The clicks older than the events are replayed as clicks alone, then every event
        with the set it showed, click or no click, as the model was trained on them (a
        model with `history_features`, `choice_history` or `display_history` reads what was
        shown; a click history alone leaves it blind to the slates a user passed over).
        """
        history = tf.convert_to_tensor(history, tf.int32)
        if events is None:
            return self.replay_recent_first(history)
        events = tf.convert_to_tensor(events, tf.int32)
        real = tf.reduce_any(events[:, :, 1:] >= 0, axis=-1)  # [B, E] showed an item
        clicks_in_events = tf.reduce_sum(tf.cast(real & (events[:, :, 0] >= 0), tf.int32), 1)
        width = tf.shape(history)[1]
        # The history less its most recent clicks_in_events entries (those are the events').
        columns = tf.range(width)[None, :] + clicks_in_events[:, None]
        older = tf.where(
            columns < width, tf.gather(history, tf.minimum(columns, width - 1), batch_dims=1), -1
        )

        def step(t, state):
            event = tf.gather(events, t, axis=1)
            item, shown = event[:, 0], event[:, 1:]
            stepped = self.update(
                state, tf.maximum(item, 0), item >= 0, tf.maximum(shown, 0), shown >= 0
            )
            happened = tf.gather(real, t, axis=1)
            return tf.nest.map_structure(
                lambda new, old: where_rows(happened, new, old), stepped, state
            )

        # The oldest event first.
        return _fold(step, tf.range(tf.shape(events)[1])[::-1], self.replay_recent_first(older))

    def state_vector(self, state: Any) -> tf.Tensor:
        """The encoded state the utilities read (`UserModel.state_vector`)."""
        return self.model.state_vector(state)

    # -- Choices ------------------------------------------------------------------------------
    def utilities(self, state: Any, items: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        """`[B, N]` r(s, a) of `items [B, N]` for the users' states."""
        return self.model.utilities(self.state_vector(state), items, mask=mask)

    def logits(
        self, state: Any, display: tf.Tensor, display_mask: tf.Tensor | None = None
    ) -> tf.Tensor:
        """`[B, N + 1]` choice logits over `display [B, N]` (all real unless `display_mask`)
        and the no-click option (`MASKED_LOGIT` where the model conditions on a click)."""
        encoded = self.state_vector(state)
        utilities = self.model.utilities(encoded, display, mask=display_mask)
        if display_mask is None:
            display_mask = tf.ones(tf.shape(display), tf.bool)
        shifts = self.model.mixture_shifts(encoded, display)
        return self.model.choice_logits(
            utilities, display_mask, shifts, self.model.mixture_log_weights(encoded)
        )

    def log_probs(
        self, state: Any, display: tf.Tensor, display_mask: tf.Tensor | None = None
    ) -> tf.Tensor:
        """`[B, N + 1]` log-probabilities of each option."""
        return tf.nn.log_softmax(self.logits(state, display, display_mask))

    def click_probabilities(
        self, state: Any, display: tf.Tensor, display_mask: tf.Tensor | None = None
    ) -> tf.Tensor:
        """`[B, N + 1]` probabilities of each option (0 on padding and an absent no-click)."""
        return tf.nn.softmax(self.logits(state, display, display_mask))

    def sample(
        self,
        state: Any,
        display: tf.Tensor,
        gumbel: tf.Tensor,
        display_mask: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """`[B]` the chosen option (`N` for no click) by the Gumbel-max trick.

        Args:
          gumbel: `[B, N + 1]` standard Gumbel noise (`gumbel_noise`).
        """
        return tf.argmax(
            self.logits(state, display, display_mask) + gumbel, axis=-1, output_type=tf.int32
        )

    def top_k(self, state: Any, items: tf.Tensor, k: int) -> tf.Tensor:
        """`[B, k]` indices into `items [B, N]` of the k highest utilities, best first."""
        return tf.math.top_k(self.utilities(state, items), k).indices

    def rewards(self, state: Any, items: tf.Tensor) -> tf.Tensor:
        """`[B, N]` the learned reward of `items`: the utilities less the no-click utility
        (`UserModel.relative_to_no_click`)."""
        return self.model.relative_to_no_click(self.utilities(state, items))

    # -- Sequence view (training and evaluation) -----------------------------------------------
    def event_logits(self, batch: dict, training: bool = False) -> tf.Tensor:
        """`[N, D + 1]` choice logits of every event of a flat batch
        (`EventArrays.flat_batch`), each from the state before its event."""
        return self.model(batch, training=training)


def gumbel_noise(rng: tf.random.Generator, shape: tf.Tensor | list[int]) -> tf.Tensor:
    """Standard Gumbel draws of `shape` from `rng`, for `ChoiceModel.sample`."""
    return -tf.math.log(-tf.math.log(rng.uniform(shape, 1e-20, 1.0)))


def _fold(step: Callable[[tf.Tensor, Any], Any], steps: tf.Tensor, state: Any) -> Any:
    """`state` after `step(t, state)` for each t of `steps` `[T]` in order, as one
    `tf.while_loop`: a traced graph holds one step whatever T (an unrolled loop made every
    trace and XLA compilation of a replay grow with the history and event widths)."""

    def body(i, state):
        return i + 1, step(steps[i], state)

    _, state = tf.while_loop(lambda i, _: i < tf.shape(steps)[0], body, (tf.constant(0), state))
    return state


def where_rows(rows: tf.Tensor, new: tf.Tensor, old: tf.Tensor) -> tf.Tensor:
    """`new` on the users where `rows [B]` is True, else `old` (any trailing shape)."""
    mask = tf.reshape(rows, tf.concat([tf.shape(rows), tf.ones([tf.rank(new) - 1], tf.int32)], 0))
    return tf.where(mask, new, old)
