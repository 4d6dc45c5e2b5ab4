"""The learned environment: a trained user model as a batched simulator of many users.

Each step the recommender shows every user a slate of k items chosen among candidates (all
items, or `n_candidates` drawn per user and step); the behaviour model phi samples a click on
one of them or, when the model learned one, no click; the reward is the learned reward r of the
clicked item (the paper's setting) or the click indicator ('auto': the click indicator when
the model learned a no-click option, whose utility is the zero point of r, else r); the clicked
item joins the history.

Centred reward ('centred'): r(s, a) less the mean of r(s, .) over `REFERENCE_ITEMS` items of
the catalogue (all of them in a smaller catalogue; otherwise that many, drawn once and the same
for every simulator of the model). A choice model without a no-click option is fitted to which
item of a display set was chosen, so its utilities are defined only up to a shift that may
depend on the state: u(s, a) + f(s) explains the logs as well as u(s, a) does, and whatever
f(s) a model happens to learn is paid by the learned reward as if it were value. A policy can
learn to steer users into states where f is high, a gain no user sees. Centring fixes the zero
point per state at the catalogue's average item and leaves every within-state comparison (and
so every ranking, GAN-Greedy's included) as it was.
Episodes last `horizon` steps. Everything runs as tensors over the batch of users.

Leaving: when the user model's run folder has a leave model (`ganrl.user_model.leave`) and
`SimulatorConfig.leave` is on, after each slate each user still there leaves with the
probability it gives (the slate's utilities under her state before it, her click, the display
sets before it in her session: those of the episode and, for a user started from a history,
one per click of that history, which the models replay as events, as the leave model counts a
logged user's display sets from the start of her log).
The batch keeps its shape: an alive mask (`Observation.alive`) marks who is still there; a
user who left gets no reward and no click, and her state stops; the slate she left after
still pays its click. The episode ends at the horizon or when everyone has left;
`session_lengths` holds each user's slates seen.

What a policy sees (`Observation`): each user's recent clicks (`history`, most recent first,
-1 padded), her recent display sets with what she did on each (`events`: what was shown and
passed over, which a click history cannot tell) and the candidate ids, never the
simulator's internal state: a policy trained in one simulator must run unchanged in another
(the test simulator of the paper's protocol), and in front of real users, whose recent slates
and clicks a server knows as well.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.user_model import LoadedUserModel
from ganrl.user_model.choice_model import gumbel_noise, where_rows
from ganrl.user_model.leave import leave_features, load_leave_model

REWARDS = ("learned", "centred", "click", "auto")
# Items whose mean learned reward is the centred reward's zero point (`REWARDS`' 'centred').
REFERENCE_ITEMS = 512


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    """Attributes:
    k: slate size.
    n_candidates: candidates drawn per user and step (0: every item).
    horizon: steps per episode.
    reward: 'learned' (r of the clicked item), 'centred' (r of the clicked item less the mean
      r over the catalogue's reference items in the same state: module docstring), 'click'
      (1 for a click) or 'auto' ('click' when the user model has a no-click option, else
      'learned').
    history_length: clicks a policy sees.
    seed: the simulator's random stream (candidates and clicks).
    leave: end users' sessions by the user model's leave model when its run folder has one
      (off, or without one: every session lasts the horizon).
    """

    k: int = 5
    n_candidates: int = 0
    horizon: int = 10
    reward: str = "auto"
    history_length: int = 10
    seed: int = 0
    leave: bool = True

    def __post_init__(self):
        config_checks.check_choice(self, "reward", REWARDS)
        config_checks.check(self, "a positive integer", "k", "horizon", "history_length")
        config_checks.check(self, "a non-negative integer", "n_candidates")
        if 0 < self.n_candidates < self.k:
            raise ValueError(
                f"n_candidates={self.n_candidates}: expected 0 (every item) or at least k={self.k}"
            )


class Observation(NamedTuple):
    """history `[B, H]` int32 recent clicks (most recent first, -1 padding); candidates
    `[B, N]` int32 item ids; step: steps taken in the episode; alive: `[B]` bool, the users
    still in their session (None: everyone); events: `[B, E, 1 + D]` int32 the users' recent
    display sets, most recent first (None: unknown, the history alone): per event the
    clicked item (-1: no click) then the D items shown (-1 padded); a row of -1 is no event.
    The events' clicks are the history's most recent ones (`event_rows` builds rows)."""

    history: tf.Tensor
    candidates: tf.Tensor
    step: int
    alive: tf.Tensor | None = None
    events: tf.Tensor | None = None


def event_rows(
    clicked_item: tf.Tensor, display: tf.Tensor, width: int, display_mask: tf.Tensor | None = None
) -> tf.Tensor:
    """`[B, 1 + width]` the `Observation.events` rows of one event per user: `clicked_item
    [B]` (-1: no click) and the shown `display [B, D]` (its real slots `display_mask`),
    padded with -1 or cut to `width` items."""
    display = tf.cast(display, tf.int32)
    if display_mask is not None:
        display = tf.where(display_mask, display, -1)
    display = display[:, :width]
    display = tf.pad(display, [[0, 0], [0, width - tf.shape(display)[1]]], constant_values=-1)
    return tf.concat([tf.cast(clicked_item, tf.int32)[:, None], display], axis=1)


def push_event(events: tf.Tensor, row: tf.Tensor) -> tf.Tensor:
    """`events [B, E, 1 + D]` with `row [B, 1 + D]` as the most recent event (the oldest
    drops out)."""
    return tf.concat([row[:, None], events[:, :-1]], axis=1)


class StepResult(NamedTuple):
    """reward `[B]`, clicked `[B]` bool, clicked_index `[B]` (slate position or -1),
    the next observation (its `alive`: who stays after this slate), whether the episode
    ended (the horizon, or everyone left) and `expected_reward` `[B]`: the reward's
    expectation over the click given the slate and the state before it (0 for a user who had
    left), what `reward` is a draw of (None where a simulator does not give it)."""

    observation: Observation
    reward: tf.Tensor
    clicked: tf.Tensor
    clicked_index: tf.Tensor
    done: bool
    expected_reward: tf.Tensor | None = None


class Simulator:
    """A batched simulator built from a trained user model."""

    def __init__(self, user_model: LoadedUserModel, config: SimulatorConfig):
        self.model = user_model
        self.config = config
        self.n_items = user_model.n_items
        if config.n_candidates > self.n_items:
            raise ValueError(
                f"n_candidates={config.n_candidates}: expected at most the user "
                f"model's {self.n_items} items (0: every item)"
            )
        if config.k > self.n_items:
            raise ValueError(
                f"k={config.k}: expected at most the user model's {self.n_items} items"
            )
        self.n_candidates = config.n_candidates or self.n_items
        self.rng = tf.random.Generator.from_seed(config.seed)
        self.shared = user_model.behavior is user_model.reward
        self.behavior = user_model.behavior_choice  # phi: what users click
        self.reward = user_model.reward_choice  # r: what a click is worth
        self.reward_kind = config.reward
        if self.reward_kind == "auto":
            self.reward_kind = "click" if self.has_no_click else "learned"
        self.leave_model = load_leave_model(user_model.run_dir) if config.leave else None
        self.reference_items = reference_items(self.n_items)
        # Observation.events: as many events as clicks in the history, each as wide as a
        # slate or as the widest display set the user model remembers.
        self.event_width = max(config.k, user_model.reward.config.history_display_width)
        self._state = None
        self.session_lengths = np.zeros(0, np.int64)

    @property
    def has_no_click(self) -> bool:
        return bool(self.model.behavior.has_no_click)

    # -- Episodes ---------------------------------------------------------------------------
    def reset(self, batch_size: int, start_histories: list[list[int]] | None = None) -> Observation:
        """Starts `batch_size` users with empty histories or with `start_histories` (each a
        user's clicked items in order, replayed through the models as one event each, and
        counted as display sets she has seen in her session by the leave model)."""
        b_state = self.behavior.initial_state(batch_size)
        r_state = b_state if self.shared else self.reward.initial_state(batch_size)
        history = np.full((batch_size, self.config.history_length), -1, np.int32)
        steps_before = np.zeros(batch_size, np.float32)
        if start_histories:
            if len(start_histories) != batch_size:
                raise ValueError("one start history per user")
            longest = max(len(h) for h in start_histories)
            padded = np.full((batch_size, longest), -1, dtype=np.int32)
            for i, h in enumerate(start_histories):
                padded[i, : len(h)] = h
                recent = h[::-1][: self.config.history_length]
                history[i, : len(recent)] = recent
                steps_before[i] = len(h)
            b_state = self.behavior.replay(padded, b_state)
            r_state = b_state if self.shared else self.reward.replay(padded, r_state)
        self._state = (b_state, r_state)
        self._history = tf.constant(history)
        self._events = tf.fill([batch_size, self.config.history_length, 1 + self.event_width], -1)
        # The leave model's steps before the episode's first slate (`_steps_before`).
        self._start_steps = tf.constant(steps_before)
        self._step = 0
        self._batch = batch_size
        self._alive = tf.ones([batch_size], tf.bool)
        self.session_lengths = np.zeros(batch_size, np.int64)
        return self.observation()

    def _advance(
        self, b_state, r_state, history, events, items, clicked, display=None, display_mask=None
    ):
        """Adds the clicked `items` of the event that showed `display` (if known; its real
        slots `display_mask`, when padded) to the states, the history and the events (a
        click whose display set is unknown counts as an event showing it alone, a no-click
        whose set is unknown as no event)."""
        b_state = self.behavior.update(
            b_state, items, clicked, display=display, display_mask=display_mask
        )
        r_state = (
            b_state
            if self.shared
            else self.reward.update(
                r_state, items, clicked, display=display, display_mask=display_mask
            )
        )
        shifted = tf.concat([items[:, None], history[:, :-1]], axis=1)
        history = tf.where(clicked[:, None], shifted, history)
        if display is None:  # the click alone is known; a no-click without its set is no event
            display, display_mask = items[:, None], clicked[:, None]
        row = event_rows(tf.where(clicked, items, -1), display, self.event_width, display_mask)
        return b_state, r_state, history, push_event(events, row)

    def _draw_candidates(self, batch_size: int) -> tf.Tensor:
        return draw_candidates(self.rng, batch_size, self.n_items, self.n_candidates)

    def step(self, observation: Observation, slate: tf.Tensor) -> StepResult:
        """Shows `slate [B, k]` (indices into `observation.candidates`) and samples clicks."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        items = tf.gather(observation.candidates, tf.cast(slate, tf.int32), batch_dims=1)
        gumbel = gumbel_noise(self.rng, tf.shape(items) + [0, 1])
        # Drawn only with a leave model, so a simulator without one keeps its stream.
        leave_draw = self.rng.uniform([self._batch]) if self.leave_model is not None else None
        b_state, r_state = self._state
        alive = self._alive
        outcome = self._step_fn(
            b_state,
            r_state,
            self._history,
            self._events,
            items,
            gumbel,
            alive,
            leave_draw,
            self._steps_before(self._step),
        )
        reward, expected, clicked, index, b_state, r_state, history, events, stays = outcome
        self.session_lengths += alive.numpy()
        self._state = (b_state, r_state)
        self._history = history
        self._events = events
        self._alive = stays
        self._step += 1
        done = self._step >= self.config.horizon or not bool(tf.reduce_any(stays))
        return StepResult(self.observation(), reward, clicked, index, done, expected)

    @tf.function(reduce_retracing=True)
    def _step_fn(
        self, b_state, r_state, history, events, items, gumbel, alive, leave_draw, steps_before
    ):
        """One slate for every user; users not `alive [B]` get nothing and stay as they are
        (`steps_before [B]`: the display sets each has seen in her session). Returns the
        reward and its expectation over the click, the click and index, the states, the
        history and who stays."""
        k = tf.shape(items)[1]
        # The behaviour model's Gumbel-max draw (`ChoiceModel.sample`), its logits kept.
        logits = self.behavior.logits(b_state, items)
        choice = tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)
        options = self._option_rewards(r_state, items)
        expected = tf.reduce_sum(tf.nn.softmax(logits) * options, axis=-1)
        expected = tf.where(alive, expected, 0.0)
        clicked = (choice < k) & alive
        index = tf.where(clicked, choice, -1)
        clicked_item = tf.gather(items, tf.minimum(choice, k - 1), batch_dims=1)
        reward = tf.where(clicked, tf.gather(options, choice, batch_dims=1), 0.0)
        moved = self._advance(
            b_state, r_state, history, events, clicked_item, clicked, display=items
        )
        # A user who had left stays as she was: the slate was not shown to her.
        b_state, r_state, history, events = tf.nest.map_structure(
            lambda new, old: where_rows(alive, new, old),
            moved,
            (b_state, r_state, history, events),
        )
        stays = alive
        if self.leave_model is not None:
            stays = alive & (leave_draw >= self._leave_probability(logits, clicked, steps_before))
        return reward, expected, clicked, index, b_state, r_state, history, events, stays

    def _steps_before(self, step: int) -> tf.Tensor:
        """`[B]` the display sets each user has seen in her session before episode step
        `step`: the step plus the events of her start history (`reset`), the quantity the
        leave model was fitted on (`ganrl.user_model.leave.steps_before`: a display set's
        index in the user's log)."""
        return self._start_steps + float(step)

    def _leave_probability(
        self, logits: tf.Tensor, clicked: tf.Tensor, steps_before: tf.Tensor
    ) -> tf.Tensor:
        """`[B]` the leave model's P(leave) after a slate of choice `logits [B, k + 1]` and
        the clicks `clicked [B]` when each user has seen `steps_before [B]` display sets
        before it in her session (`_steps_before`)."""
        features = leave_features(logits, clicked, steps_before, self.has_no_click)
        return self.leave_model.probability(features)

    def leave_probabilities(self, items: tf.Tensor, clicked: tf.Tensor, step: int) -> tf.Tensor:
        """`[B]` P(leave) after showing `items [B, k]` with the clicks `clicked [B]` at
        episode step `step` (counted on from each user's start history, `_steps_before`),
        under the current states (call it before `advance` moves them past the slate);
        zeros without a leave model (nobody leaves). An ensemble asks each member."""
        if self.leave_model is None:
            return tf.zeros(tf.shape(clicked), tf.float32)
        logits = self.behavior.logits(self._state[0], items)
        return self._leave_probability(logits, clicked, self._steps_before(step))

    def slate_items(self, observation: Observation, slate: tf.Tensor) -> tf.Tensor:
        """`[B, k]` the item ids of `slate [B, k]` (indices into `observation.candidates`)."""
        return tf.gather(observation.candidates, tf.cast(slate, tf.int32), batch_dims=1)

    def utilities(self, items: tf.Tensor) -> tf.Tensor:
        """`[B, N]` the behaviour model's utilities of `items [B, N]` for the current states."""
        return self.behavior.utilities(self._state[0], items)

    def choice_probabilities(self, items: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        """`[B, k + 1]` the behaviour model's probabilities of clicking each of `items [B, k]`
        (its real slots `mask [B, k]`, when padded) and of no click, for the current states."""
        return self.behavior.click_probabilities(self._state[0], items, mask)

    def option_rewards(self, items: tf.Tensor) -> tf.Tensor:
        """`[B, k + 1]` the reward `step` pays for each click on `items [B, k]` and for no
        click (0): 1 per click (click reward) or r_i - r_no_click (learned reward)."""
        return self._option_rewards(self._state[1], items)

    def _option_rewards(self, r_state, items: tf.Tensor) -> tf.Tensor:
        """`option_rewards` under the reward model's states `r_state`."""
        if self.reward_kind == "click":
            r = tf.ones(tf.shape(items), tf.float32)
        else:
            r = self.learned_rewards(r_state, items)
        return tf.concat([r, tf.zeros([tf.shape(items)[0], 1], tf.float32)], axis=1)

    def advance(
        self,
        items: tf.Tensor,
        clicked: tf.Tensor,
        display: tf.Tensor | None = None,
        display_mask: tf.Tensor | None = None,
        alive: tf.Tensor | None = None,
    ) -> None:
        """Moves every user on by one step in which she clicked `items [B]` where `clicked
        [B]` (after seeing `display [B, k]`, if known, its real slots `display_mask`), whoever
        chose the click: an ensemble moves all its members with the click one of them
        sampled, an off-policy replay with the logged click. Users not `alive [B]` (default:
        everyone is) stay as they were."""
        before = (*self._state, self._history, self._events)
        moved = self._advance(*before, items, clicked, display=display, display_mask=display_mask)
        if alive is not None:
            moved = tf.nest.map_structure(
                lambda new, old: where_rows(alive, new, old), moved, before
            )
        b_state, r_state, self._history, self._events = moved
        self._state = (b_state, r_state)
        self._step += 1

    def observation(self, candidates: tf.Tensor | None = None) -> Observation:
        """The current observation, with `candidates` or freshly drawn ones."""
        if candidates is None:
            candidates = self._draw_candidates(self._batch)
        return Observation(self._history, candidates, self._step, self._alive, self._events)

    def click_probabilities(self, observation: Observation, slate: tf.Tensor) -> tf.Tensor:
        """`[B, k + 1]` the behaviour model's probabilities of each slate item and no click."""
        return self.choice_probabilities(self.slate_items(observation, slate))

    def expected_slate_reward(self, observation: Observation, slate: tf.Tensor) -> tf.Tensor:
        """`[B]` the expected reward of showing `slate [B, k]` now: the click probability
        (click reward) or sum_i p_i (r_i - r_no_click) (learned reward), as `step` pays it."""
        items = self.slate_items(observation, slate)
        return tf.reduce_sum(self.choice_probabilities(items) * self.option_rewards(items), axis=-1)

    def best_slate(self, observation: Observation) -> tf.Tensor:
        """`[B, k]` the candidates of highest utility under the behaviour model. It maximises
        the click probability exactly (under a softmax with a no-click option a higher
        utility in the slate always raises it); for the learned reward it is the reference
        slate of regret (the best single items, not a search over assortments)."""
        return self.behavior.top_k(self._state[0], observation.candidates, self.config.k)

    def expected_rewards(self, observation: Observation) -> tf.Tensor:
        """`[B, N]` the learned reward of every candidate for the current states (centred
        with the centred reward)."""
        if self.reward_kind == "centred":
            return self.learned_rewards(self._state[1], observation.candidates)
        return self.reward.utilities(self._state[1], observation.candidates)

    def reward_zero(self, r_state, batch_size: tf.Tensor) -> tf.Tensor:
        """`[B, 1]` the centred reward's zero point: the mean learned utility of the
        reference items under the reward model's states `r_state` of `batch_size` users."""
        items = tf.tile(self.reference_items[None], [batch_size, 1])
        return tf.reduce_mean(self.reward.utilities(r_state, items), axis=1, keepdims=True)

    def learned_rewards(self, r_state, items: tf.Tensor) -> tf.Tensor:
        """`[B, N]` the learned reward of `items [B, N]` under the reward model's states, as
        `step` pays it: r - r_no_click ('learned'), or r less the reference items' mean
        ('centred')."""
        if self.reward_kind == "centred":
            zero = self.reward_zero(r_state, tf.shape(items)[0])
            return self.reward.utilities(r_state, items) - zero
        return self.reward.rewards(r_state, items)


def reference_items(n_items: int) -> tf.Tensor:
    """`[R]` int32 the items whose mean learned reward is the centred reward's zero point:
    every item of a catalogue of at most `REFERENCE_ITEMS`, else that many drawn without
    replacement by a fixed stream (the same for every simulator of a catalogue), sorted."""
    if n_items <= REFERENCE_ITEMS:
        return tf.range(n_items, dtype=tf.int32)
    drawn = np.random.default_rng(0).choice(n_items, REFERENCE_ITEMS, replace=False)
    return tf.constant(np.sort(drawn), tf.int32)


def draw_candidates(
    rng: tf.random.Generator, batch_size: int, n_items: int, n_candidates: int
) -> tf.Tensor:
    """`[B, n_candidates]` item ids: every item, or `n_candidates` drawn per user."""
    if n_candidates == n_items:
        return tf.tile(tf.range(n_items, dtype=tf.int32)[None], [batch_size, 1])
    keys = rng.uniform([batch_size, n_items])
    return tf.math.top_k(keys, n_candidates, sorted=False).indices


def user_histories(events: Any, rows: np.ndarray) -> list[list[int]]:
    """The clicked items, in order, of users `rows` of an `EventArrays`."""
    clicked = events.clicked_item
    out = []
    for r in rows:
        c = clicked[events.event_offsets[r] : events.event_offsets[r + 1]]
        out.append([int(i) for i in c if i >= 0])
    return out
