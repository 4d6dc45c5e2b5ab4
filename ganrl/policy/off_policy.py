"""Off-policy estimates of a policy's value on logged users (IPS, self-normalised IPS, direct
method, doubly robust), the check of a simulator's figure against the logs themselves.

The logged users are replayed event by event: at each logged event the policy sees the
user's logged clicks so far (as in the simulator) and every item as a candidate, and picks its
slate S; then the user moves on with her logged click. `max_events` keeps each user's first
events only: the replay's cost grows with the longest user (every step runs every policy over
the whole catalogue), and the estimand is then the value over those first events.

What the logs cannot tell and what is assumed (the released files record display sets, not
the probabilities the logging system showed them with):
- Display propensities are context-free: item i is in a logged display set with probability
  mu(i), its share of the training events whose display set holds it. This is the logging
  policy of popularity-drawn display sets; a logging system that targeted users breaks it.
- The estimand is item-level: V(pi) = mean over events of sum_{i in S} q(i), q(i) being the
  probability that the user clicks i when i is in the display set (the other items being
  what the logging system shows). The logged click tells it for the items of S that were
  displayed (weighted by 1 / mu(i)), the user model for every item (the direct method).
  It credits a slate for the items a user would click among what she is shown, not for the
  slate's own click probability, which logs without propensities cannot give.
- The direct method's q^(i): under the model's softmax, i shown with the other items of a
  display set D' drawn from the logging policy (a random event's set of `reference`, the
  training events), i in the place of itself if D' holds it, else of a random item of D':
  e^{u_i} / (Z_0 + Z_{others} + e^{u_i}), Z_0 the no-click weight. With uniformly drawn
  display sets those others are distributed as the others beside i in a logged set that
  holds i, so with the true model the direct method is unbiased too. D' is drawn
  independently of the event's own display set D, so q^(i) does not depend on whether i was
  displayed and the doubly robust estimate stays unbiased when the model is wrong: its model
  term and its correction share that one prediction. (A q^ that took D's own items when i
  was displayed and D's others when not left the model's error on the items not displayed,
  most of them, uncorrected.)

Estimators (per event e, W_e = sum_{i in S and D} 1 / mu(i), whose mean is k under the
assumption):
  IPS   mean_e sum_{i in S and D} click_e(i) / mu(i)
  SNIPS k * sum_e IPS_e / sum_e W_e
  DM    mean_e sum_{i in S} q^_e(i)
  DR    DM + mean_e sum_{i in S and D} (click_e(i) - q^_e(i)) / mu(i)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ganrl.data.dataset import EventArrays
from ganrl.simulator.simulator import Simulator, SimulatorConfig
from ganrl.user_model import LoadedUserModel

ESTIMATORS = ("ips", "snips", "dm", "dr")


def display_propensities(events: EventArrays) -> np.ndarray:
    """`[n_items]` the share of `events` whose display set holds each item."""
    counts = np.bincount(events.display[events.display_mask], minlength=events.n_items)
    return counts / max(events.n_events, 1)


@dataclasses.dataclass(frozen=True)
class EventTerms:
    """Per logged event (`[E]` arrays, in the events' order): the terms of the estimators."""

    ips: np.ndarray
    weight: np.ndarray
    dm: np.ndarray
    correction: np.ndarray

    def estimates(self, k: int) -> dict[str, dict[str, float]]:
        """Each estimator's value with its standard error (over events; SNIPS by the delta
        method)."""
        n = len(self.ips)

        def mean_se(values: np.ndarray) -> dict[str, float]:
            return {
                "value": float(values.mean()),
                "se": float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            }

        weight = self.weight.mean()
        snips = k * self.ips.sum() / max(self.weight.sum(), 1e-12)
        residual = (self.ips - snips / k * self.weight) * k / max(weight, 1e-12)
        return {
            "ips": mean_se(self.ips),
            "snips": {"value": float(snips), "se": mean_se(residual)["se"]},
            "dm": mean_se(self.dm),
            "dr": mean_se(self.dm + self.correction),
        }


def event_terms(
    policy,
    model: LoadedUserModel,
    events: EventArrays,
    propensity: np.ndarray,
    k: int,
    history_length: int = 10,
    batch_users: int = 512,
    max_events: int | None = None,
    progress: Callable[[Callable[[], str]], None] | None = None,
    reference: EventArrays | None = None,
    seed: int = 0,
) -> EventTerms:
    """Replays `events`' users through `policy` (anything with `select(Observation)`) and
    `model` (the direct method); `propensity` from `display_propensities` of the training
    events, `reference` those events (the display sets the direct method draws what else is
    shown from, with `seed`; default `events` themselves). Each user's first `max_events`
    events only, when given; `progress` is called with a message maker at every step (a
    `Heartbeat` prints one now and then)."""
    if len(propensity) != events.n_items or model.n_items != events.n_items:
        raise ValueError(
            f"{events.n_items} items in the logs, {len(propensity)} propensities, "
            f"{model.n_items} items in the user model {model.run_dir}"
        )
    if max_events is not None and max_events <= 0:
        raise ValueError(f"max_events={max_events}: expected a positive integer")
    reference = events if reference is None else reference
    if reference.n_events == 0:
        raise ValueError("reference: no display set to draw the direct method's from")
    rng = np.random.default_rng(seed)
    parts = [
        _replay(
            policy,
            model,
            events,
            propensity,
            k,
            history_length,
            np.arange(start, min(start + batch_users, events.n_users)),
            max_events,
            progress or (lambda message: None),
            (reference, rng),
        )
        for start in range(0, events.n_users, batch_users)
    ]
    return EventTerms(*(np.concatenate(columns) for columns in zip(*parts)))


def _replay(
    policy, model, events, propensity, k, history_length, users, max_events, progress, draws
):
    """The estimators' terms of the (first `max_events`) events of `users` (rows), in the
    events' order; `draws` = (the reference events, a generator) for the direct method's
    display sets."""
    reference, rng = draws
    config = SimulatorConfig(k=k, horizon=1, history_length=history_length, reward="click")
    sim = Simulator(model, config)
    n_users, n_items = len(users), events.n_items
    starts, lengths = events.event_offsets[users], events.events_per_user[users]
    if max_events is not None:
        lengths = np.minimum(lengths, max_events)
    sim.reset(n_users)
    candidates = tf.tile(tf.range(n_items, dtype=tf.int32)[None], [n_users, 1])
    inverse = np.where(propensity > 0, 1.0 / np.maximum(propensity, 1e-12), 0.0)
    no_click = model.behavior.no_click_logit
    reads_set = model.behavior.config.set_context or model.behavior.config.set_summary
    out = np.zeros((4, int(lengths.sum())))
    written = np.concatenate([[0], np.cumsum(lengths)])[:-1]
    steps = int(lengths.max(initial=0))
    for t in range(steps):
        progress(lambda: f"off-policy replay: users {users[0]}-{users[-1]}, step {t}/{steps}")
        active = lengths > t
        rows = starts + np.minimum(t, np.maximum(lengths - 1, 0))
        display, mask = events.display[rows], events.display_mask[rows]
        clicked_pos = np.where(active, events.clicked_pos[rows], -1)
        observation = sim.observation(candidates)._replace(step=t, alive=None)
        slate = policy.select(observation).numpy()  # candidates are all items: ids
        drawn = rng.integers(reference.n_events, size=n_users)  # the direct method's sets
        shown, shown_mask = reference.display[drawn], reference.display_mask[drawn]
        if reads_set:  # an item's utility depends on the set it is scored in: the catalogue
            utilities = sim.utilities(candidates).numpy().astype(np.float64)
            u_shown = np.take_along_axis(utilities, shown, 1)
            u_slate = np.take_along_axis(utilities, slate, 1)
        else:  # only the drawn sets' and the slate's items' utilities are needed
            items = np.concatenate([np.where(shown_mask, shown, 0), slate], axis=1)
            utilities = sim.utilities(tf.constant(items, tf.int32)).numpy().astype(np.float64)
            u_shown, u_slate = utilities[:, : shown.shape[1]], utilities[:, shown.shape[1] :]
        # i takes the place of itself in D' when there, else of a random item of D'.
        in_shown = (slate[:, :, None] == shown[:, None, :]) & shown_mask[:, None, :]
        replaced = np.argmax(np.where(shown_mask, rng.random(shown.shape), -1.0), axis=1)
        others = shown_mask[:, None, :] & np.where(
            in_shown.any(-1, keepdims=True),
            ~in_shown,
            np.arange(shown.shape[1])[None, None, :] != replaced[:, None, None],
        )
        with np.errstate(divide="ignore"):  # a one-item D' leaves no others: log 0
            log_rest = np.logaddexp.reduce(np.where(others, u_shown[:, None, :], -np.inf), -1)
        if no_click is not None:
            log_rest = np.logaddexp(log_rest, float(no_click.numpy()))
        q = np.exp(u_slate - np.logaddexp(log_rest, u_slate))
        in_display = ((slate[:, :, None] == display[:, None, :]) & mask[:, None, :]).any(-1)
        clicked_item = np.where(
            clicked_pos >= 0, display[np.arange(n_users), np.maximum(clicked_pos, 0)], -1
        )
        click = (slate == clicked_item[:, None]).astype(np.float64)
        weight = in_display * inverse[slate]
        terms = np.stack(
            [(click * weight).sum(1), weight.sum(1), q.sum(1), ((click - q) * weight).sum(1)]
        )
        out[:, written[active] + t] = terms[:, active]
        sim.advance(
            tf.constant(np.maximum(clicked_item, 0), tf.int32),
            tf.constant(clicked_pos >= 0),
            display=tf.constant(display, tf.int32),
            display_mask=tf.constant(mask & active[:, None]),
        )
    return tuple(out)


def estimate(
    policy,
    model: LoadedUserModel,
    logged: EventArrays,
    train: EventArrays,
    k: int,
    history_length: int = 10,
    max_events: int | None = None,
    progress: Callable[[Callable[[], str]], None] | None = None,
) -> dict[str, dict[str, float]]:
    """The off-policy estimates of `policy` on the `logged` users (propensities from `train`,
    the direct method from `model`; each user's first `max_events` events when given)."""
    terms = event_terms(
        policy,
        model,
        logged,
        display_propensities(train),
        k,
        history_length,
        max_events=max_events,
        progress=progress,
        reference=train,
    )
    return terms.estimates(k)
