"""The parts of a user's state beyond the history encoder's, each behind one interface.

A `UserModel`'s state is the history encoder's state plus one entry per configured part
(`STATE_PARTS`, keyed by the `ModelConfig` option that switches the part on). A part says:
- what it remembers of an empty history (`initial_state`) and how one event changes that
  (`update_state`, the step view of the simulator);
- what it adds to the encoded state vector the utility reads (`vector`, `vector_dim`
  columns, with the rows of its bilinear start `bilinear_block`), and the same columns for
  every event of a flat training batch at once (`sequence_vector`, the sequence view);
- or, instead of columns, item ids it hands to the per-item context (`context` in the step
  view, `sequence_context` in the sequence view, read by `context_features`): ids stay
  int32 tensors and never enter the float vector.

A new part is a class here and an entry in `STATE_PARTS` (with its `ModelConfig` option);
`UserModel` composes whatever is configured and has no branch on the options.
Shapes: `B` users, `N` events of a flat batch, `D` display width, `E` item embedding width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np
import tensorflow as tf

from ganrl.user_model import context

if TYPE_CHECKING:  # the model imports this module; parts only call it
    from ganrl.user_model.model import ModelConfig, UserModel


class Event(NamedTuple):
    """One event of every user of a batch (the step view): `clicked_item [B]` (any id where
    nothing was clicked), `clicked [B]` bool and, when known, the display set `display [B, D]`
    with `display_mask [B, D]` (None: every slot real)."""

    clicked_item: tf.Tensor
    clicked: tf.Tensor
    display: tf.Tensor | None
    display_mask: tf.Tensor | None


class StatePart:
    """One part of the state (see the module docstring). Defaults: no columns, no context."""

    name: str = ""
    vector_dim: int = 0
    context_dim: int = 0

    def __init__(self, config: ModelConfig):
        self.config = config

    def create_weights(self, model: UserModel) -> None:
        """Adds the part's learned weights to `model` (called once, in its constructor)."""

    def initial_state(self, batch_size: int | tf.Tensor) -> Any:
        raise NotImplementedError

    def update_state(self, model: UserModel, state: dict, event: Event) -> Any:
        """This part's state after `event`, from the whole state before it."""
        raise NotImplementedError

    def bilinear_block(self) -> np.ndarray:
        """`[vector_dim, E]` the bilinear term's starting rows for this part's columns."""
        raise NotImplementedError

    def vector(self, model: UserModel, part_state: Any) -> tf.Tensor:
        """`[B, vector_dim]` the part's columns of the encoded state."""
        raise NotImplementedError

    def sequence_vector(
        self,
        model: UserModel,
        batch: dict,
        vector_before: tf.Tensor,
        scores: Callable[[tf.Tensor], tf.Tensor],
        training: bool,
    ) -> tf.Tensor:
        """`[N, vector_dim]` the part's columns for every event of a flat batch, each from the
        user's earlier events.

        Args:
          vector_before: `[N, S']` the columns of the encoder and the parts before this one.
          scores: `[N, S'']` vector (zero-padded to the full width) -> `[N, D]` the events'
            utilities under it (with every part's context).
        """
        raise NotImplementedError

    def context(self, part_state: Any) -> Any:
        """What the per-item context reads of this part's state (step view)."""
        raise NotImplementedError

    def sequence_context(self, batch: dict) -> Any:
        """The same for every event of a flat batch (sequence view)."""
        raise NotImplementedError

    def context_features(self, items: tf.Tensor, part_context: Any) -> tf.Tensor:
        """`[..., N, context_dim]` features of `items [..., N]`."""
        raise NotImplementedError


class DisplaySummary(StatePart):
    """`display_history`: the mean embedding of the items the user passed over (averaged over
    her earlier events), her share of no-click events and log(1 + events).

    State: the sums `[B, E + 2]` (passed-over means, no-clicks, events); an event without its
    display set adds nothing."""

    name = "shown"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.vector_dim = config.item_dim + 2

    def initial_state(self, batch_size):
        return tf.zeros([batch_size, self.vector_dim])

    def update_state(self, model, state, event):
        if event.display is None:
            return state[self.name]
        mask = event.display_mask
        if mask is None:
            mask = tf.ones(tf.shape(event.display), tf.bool)
        passed = mask & ~(
            event.clicked[:, None] & tf.equal(event.display, event.clicked_item[:, None])
        )
        return state[self.name] + self.event_sums(model, event.display, passed, ~event.clicked)

    @staticmethod
    def event_sums(
        model: UserModel,
        display: tf.Tensor,
        passed: tf.Tensor,
        no_click: tf.Tensor,
        training: bool = False,
    ) -> tf.Tensor:
        """`[N, E + 2]` what one event adds to the sums: the mean embedding of the items
        passed over (`passed [N, D]` of `display [N, D]`), whether nothing was clicked, and 1."""
        weights = tf.cast(passed, tf.float32)
        embeddings = model.items(display, training=training) * weights[..., None]
        mean = (
            tf.reduce_sum(embeddings, -2) / tf.maximum(tf.reduce_sum(weights, -1), 1.0)[..., None]
        )
        ones = tf.ones_like(mean[..., :1])
        return tf.concat([mean, tf.cast(no_click, tf.float32)[..., None], ones], axis=-1)

    def bilinear_block(self):
        dim = self.config.item_dim
        return np.concatenate([np.eye(dim, dtype=np.float32), np.zeros((2, dim), np.float32)])

    def vector(self, model, part_state):
        return summarise_displays(part_state)

    def sequence_vector(self, model, batch, vector_before, scores, training):
        display, mask = batch["display"], batch["display_mask"]
        passed = mask & (tf.range(tf.shape(display)[1])[None, :] != batch["clicked_pos"][:, None])
        sums = self.event_sums(model, display, passed, batch["clicked_pos"] < 0, training)
        return summarise_displays(
            user_prefix_sums(sums, batch["event_user"], tf.shape(batch["click_items"])[0])
        )


class ChoiceEvidence(StatePart):
    """`choice_history`: per earlier event, the clicked item's embedding less the model's
    predicted mean embedding of the choice (from the state without this part), summed,
    shrunk by 1 / (1 + k events) with a learned k > 0, and log(1 + events).

    State: the sums `[B, E + 1]` (evidence, events). An event without its display set counts
    as a display set of the clicked item alone."""

    name = "choices"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.vector_dim = config.item_dim + 1
        self.shrink_weight = None

    def create_weights(self, model):
        # k = softplus(this), 1 at the start.
        self.shrink_weight = model.add_weight(
            name="choice_shrink",
            shape=(),
            initializer=tf.keras.initializers.Constant(float(np.log(np.e - 1.0))),
        )

    def shrink(self) -> tf.Tensor:
        """k > 0 of the shrinkage 1 / (1 + k events)."""
        return tf.nn.softplus(self.shrink_weight)

    def initial_state(self, batch_size):
        return tf.zeros([batch_size, self.vector_dim])

    def update_state(self, model, state, event):
        display, mask = shown(event)
        display = tf.convert_to_tensor(display, tf.int32)
        without = dict(state, **{self.name: tf.zeros_like(state[self.name])})
        # As in the sequence view: the utilities without this part and without a taste.
        encoded = model.state_vector(without).with_taste(None)
        utilities = model.utilities(encoded, display, mask=mask)
        clicked_pos = clicked_position(display, mask, event)
        return state[self.name] + model._choice_evidence(utilities, display, mask, clicked_pos)

    def bilinear_block(self):
        dim = self.config.item_dim
        return np.concatenate([np.eye(dim, dtype=np.float32), np.zeros((1, dim), np.float32)])

    def vector(self, model, part_state):
        return summarise_choices(part_state, self.shrink())

    def sequence_vector(self, model, batch, vector_before, scores, training):
        # Each event's evidence from the utilities without it; since the states see only
        # earlier events, one pass over all events gives every event's evidence.
        without = scores(vector_before)
        evidence = model._choice_evidence(
            without,
            batch["display"],
            batch["display_mask"],
            batch["clicked_pos"],
            training=training,
        )
        return summarise_choices(
            user_prefix_sums(evidence, batch["event_user"], tf.shape(batch["click_items"])[0]),
            self.shrink(),
        )


class RecentItems(StatePart):
    """`history_features`: the ids of the user's last `history_clicks` clicks and last
    `history_events` display sets (`context.HistoryIds`, int32), from which each candidate
    gets `context.HISTORY_FEATURES` (clicked before, last click, shown before, in the
    previous display set)."""

    name = "ids"
    context_dim = len(context.HISTORY_FEATURES)

    def initial_state(self, batch_size):
        cfg = self.config
        return context.empty_history_ids(
            batch_size, cfg.history_clicks, cfg.history_events, cfg.history_display_width
        )

    def update_state(self, model, state, event):
        return context.update_history_ids(
            state[self.name], event.clicked_item, event.clicked, event.display, event.display_mask
        )

    def context(self, part_state):
        return part_state

    def sequence_context(self, batch):
        cfg = self.config
        width = batch["display"].shape[-1]
        if width is not None and width > cfg.history_display_width:
            raise ValueError(
                f"display sets of {width} items: this model remembers at most "
                f"{cfg.history_display_width} (history_display_width)"
            )
        return context.HistoryIds(
            context.recent_click_items(
                batch["click_items"],
                batch["event_user"],
                batch["clicks_before"],
                cfg.history_clicks,
            ),
            context.recent_display_items(
                batch["display"], batch["display_mask"], batch["event_user"], cfg.history_events
            ),
        )

    def context_features(self, items, part_context):
        return context.history_features(items, part_context.clicks, part_context.displays)


# The state key (and `EncodedState.context` key) of `TastePosterior`.
TASTE = "taste"


class TastePosterior(StatePart):
    """`taste_posterior`: the log-likelihood of the user's earlier choices under each of the
    model's K user types (`UserModel.choice_log_likelihoods`), which with the types' prior
    weigh their softmaxes in the choice and their effects in the utilities. No columns: the
    model reads it as `EncodedState.taste`, and the sequence view computes it there.

    State: the sums and the number of events `[B, K + 1]`; `evidence` turns them into what
    the model weighs the types by. An event without its display set counts as a display set
    of the clicked item alone (which says nothing where the model has no no-click option)."""

    name = TASTE

    def initial_state(self, batch_size):
        return tf.zeros([batch_size, self.config.taste_posterior + 1])

    def update_state(self, model, state, event):
        display, mask = shown(event)
        # The utilities of the state before the event without a type's effect (each adds its own).
        encoded = model.state_vector(state).with_taste(None)
        utilities = model.utilities(encoded, display, mask=mask)
        log_likelihoods = model.choice_log_likelihoods(
            utilities, display, mask, clicked_position(display, mask, event)
        )
        return state[self.name] + tf.concat(
            [log_likelihoods, tf.ones_like(log_likelihoods[:, :1])], axis=-1
        )

    def evidence(self, sums_and_events: tf.Tensor) -> tf.Tensor:
        """The state `[..., K + 1]` -> `[..., K]` the types' evidence (`type_evidence`)."""
        return type_evidence(
            sums_and_events[..., :-1], sums_and_events[..., -1:], self.config.taste_evidence
        )


def type_evidence(sums: tf.Tensor, events: tf.Tensor, cap: int) -> tf.Tensor:
    """The user types' log-likelihood `sums [..., K]` of a user's `events [..., 1]` earlier
    choices, counting at most `cap` events (0: all): beyond it, the mean per event times
    `cap`. Users drift and no K types describe any of them exactly, so the exact posterior
    of a long history settles on one type long before the data would justify it."""
    if not cap:
        return sums
    return sums * tf.minimum(1.0, cap / tf.maximum(events, 1.0))


def shown(event: Event) -> tuple[tf.Tensor, tf.Tensor]:
    """`display [B, D]` int32 and `mask [B, D]` of an event, a display set of the clicked item
    alone where the event has none."""
    display, mask = event.display, event.display_mask
    if display is None:
        return tf.convert_to_tensor(event.clicked_item, tf.int32)[:, None], event.clicked[:, None]
    if mask is None:
        mask = tf.ones(tf.shape(display), tf.bool)
    return tf.convert_to_tensor(display, tf.int32), mask


def clicked_position(display: tf.Tensor, mask: tf.Tensor, event: Event) -> tf.Tensor:
    """`[B]` the position in `display [B, D]` of the event's clicked item, -1 for no click."""
    hit = mask & tf.equal(display, event.clicked_item[:, None]) & event.clicked[:, None]
    return tf.where(
        tf.reduce_any(hit, -1), tf.argmax(tf.cast(hit, tf.int32), -1, output_type=tf.int32), -1
    )


# The parts by the ModelConfig option that switches each on, in the order of their columns.
STATE_PARTS: dict[str, type[StatePart]] = {
    "display_history": DisplaySummary,
    "choice_history": ChoiceEvidence,
    "history_features": RecentItems,
    "taste_posterior": TastePosterior,
}


def make_state_parts(config: ModelConfig) -> list[StatePart]:
    """The parts `config` switches on, in `STATE_PARTS` order."""
    return [part(config) for option, part in STATE_PARTS.items() if getattr(config, option)]


def user_prefix_sums(values: tf.Tensor, event_user: tf.Tensor, n_users: tf.Tensor) -> tf.Tensor:
    """`[N, F]` per-event values -> for each event, the sum over its user's earlier events.

    A flat batch holds each user's events together and in order, so this is an exclusive
    cumulative sum less its value at the user's first event. The running sum covers every
    user of the batch, so it is kept in float64: in float32 its rounding (an error of 0.03 over
    200,000 events of 0.3) would make a user's sums depend on the users before her.
    """
    running = tf.cumsum(tf.cast(values, tf.float64), axis=0, exclusive=True)
    first = tf.math.unsorted_segment_min(tf.range(tf.shape(event_user)[0]), event_user, n_users)
    own = running - tf.gather(running, tf.gather(first, event_user))
    return tf.cast(own, values.dtype)


def summarise_displays(sums: tf.Tensor) -> tf.Tensor:
    """Display-summary sums `[..., E + 2]` (passed-over means, no-clicks, events) -> the
    state part `[..., E + 2]`: their means over the earlier events and log(1 + events)."""
    events = sums[..., -1:]
    means = sums[..., :-1] / tf.maximum(events, 1.0)
    return tf.concat([means, tf.math.log1p(events)], axis=-1)


def summarise_choices(sums: tf.Tensor, shrink: tf.Tensor | float) -> tf.Tensor:
    """Choice-evidence sums `[..., E + 1]` (evidence, events) -> the state part
    `[..., E + 1]`: the evidence shrunk by 1 / (1 + shrink * events) and log(1 + events)."""
    events = sums[..., -1:]
    return tf.concat([sums[..., :-1] / (1.0 + shrink * events), tf.math.log1p(events)], axis=-1)
