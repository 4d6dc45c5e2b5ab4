"""The bounded learned residual over GAN-Greedy's score (issue 18, item 5), shared by the
learning policies.

A learning policy scores a candidate a for state s as
  score(s, a) = w * (r(s, a) + c * u(s, a) * tanh(h(s, a))),
where r is the training user model's learned reward (what GAN-Greedy ranks by), h the
policy's own learned term, w > 0 a weight (1 where the policy learns none), c >= 0 the
bound in r's units and u(s, a) = exp(-uncertainty * std_m r_m(s, a)) in (0, 1] the
shrinking of the bound where the members of an ensemble of user models disagree on the item
(1 with one model). Since |c u tanh(h)| <= c, two candidates whose learned rewards differ by
more than 2c keep GAN-Greedy's order whatever the policy learned: learning reorders only
what the user model finds nearly equal. With h = 0 (a policy whose learned term starts at 0)
the score is w r, GAN-Greedy's ranking. c = 0 is no bound (each policy then keeps its form
from before issue 18).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

# softplus(SOFTPLUS_ONE) = 1: the initial value of a weight w = softplus(.) that starts at 1.
SOFTPLUS_ONE = float(np.log(np.e - 1.0))


def bounded_score(
    reward: tf.Tensor,
    learned: tf.Tensor,
    bound: float,
    shrink: tf.Tensor | None = None,
    weight: tf.Tensor | float | None = None,
) -> tf.Tensor:
    """w * (r + c * u * tanh(h)).

    Args:
      reward: r(s, a), any shape (e.g. `[B, N]`).
      learned: h(s, a), the same shape.
      bound: c > 0.
      shrink: u(s, a), the same shape (None: 1).
      weight: w, broadcastable to the shape (None: 1).

    Returns:
      The scores, the shape of `reward`; |score / w - r| <= c u.
    """
    limit = bound if shrink is None else bound * shrink
    score = reward + limit * tf.tanh(learned)
    return score if weight is None else weight * score


def reward_weights(
    network: tf.keras.layers.Layer,
    shape: tuple[int, ...],
    reward_residual: bool,
    residual_bound: float,
) -> tuple[tf.Variable | None, tf.Variable | None]:
    """`(greedy_weight, reward_weight)`: the weights of r(s, a) that `network` adds (with
    `shape`, e.g. `()` or `[k]`) when its candidates' last feature is the learned reward.

    With the bounded residual (`residual_bound` c > 0) w = softplus(greedy_weight) > 0, the
    w of `bounded_score`, starts at 1: the greedy ranking's direction is kept. Without it,
    `reward_weight` (starting at 1) multiplies r when `reward_residual`; else neither.

    Raises:
      ValueError: c > 0 without `reward_residual` (there is no r to stay near).
    """
    if residual_bound and not reward_residual:
        raise ValueError("residual_bound > 0 needs the learned reward (reward_residual)")
    if residual_bound:
        greedy_weight = network.add_weight(
            name="greedy_weight",
            shape=shape,
            initializer=tf.keras.initializers.Constant(SOFTPLUS_ONE),
        )
        return greedy_weight, None
    if reward_residual:
        return None, network.add_weight(name="reward_weight", shape=shape, initializer="ones")
    return None, None


def ensemble_shrink(
    members: Sequence,
    history: tf.Tensor,
    candidates: tf.Tensor,
    uncertainty: float,
    chunk: int = 0,
    events: tf.Tensor | None = None,
    encoded: Sequence | None = None,
) -> tf.Tensor:
    """`[B, N]` u(s, a) = exp(-uncertainty * std over `members` (user models) of r_m(s, a)) for
    the states of histories `[B, H]` (and recent display sets `events`, if known; or each
    member's `encoded` states, `encoded_state`) and candidates `[B, N]` (`chunk`: scored that
    many candidates at a time, `learned_rewards`)."""
    from ganrl.policy.heuristics import learned_rewards

    encoded = [None] * len(members) if encoded is None else encoded
    spread = tf.math.reduce_std(
        tf.stack(
            [
                learned_rewards(model, history, candidates, chunk, events, state)
                for model, state in zip(members, encoded, strict=True)
            ]
        ),
        axis=0,
    )
    return tf.exp(-uncertainty * spread)


class Residual:
    """What a policy needs to score with the bounded residual: the reward model, the bound c
    and the ensemble members whose disagreement shrinks it.

    Args:
      reward_model: the training user model (its r(s, a)); None: no residual (`active` is
        False).
      bound: c (0: no residual).
      uncertainty: the shrinking's strength (0: u = 1).
      ensemble_models: the training ensemble's members (two or more; fewer: u = 1).
    """

    def __init__(
        self,
        reward_model=None,
        bound: float = 0.0,
        uncertainty: float = 0.0,
        ensemble_models: Sequence = (),
    ):
        self.reward_model = reward_model
        self.bound = float(bound) if reward_model is not None else 0.0
        self.uncertainty = float(uncertainty)
        self.members = (
            tuple(ensemble_models)
            if self.bound and self.uncertainty and len(ensemble_models) > 1
            else ()
        )

    @property
    def active(self) -> bool:
        """Whether scores are bounded around GAN-Greedy's (a reward model and c > 0)."""
        return bool(self.bound)

    def encode(self, history: tf.Tensor, events: tf.Tensor | None = None) -> list:
        """The encoded states of the reward model and of each member (`encoded_states`: a
        member that is also in the reward model's mean is encoded once)."""
        from ganrl.policy.heuristics import encoded_states

        return encoded_states((self.reward_model, *self.members), history, events)

    def rewards(
        self, history: tf.Tensor, candidates: tf.Tensor, chunk: int = 0, events=None, encoded=None
    ) -> tf.Tensor:
        """`[B, N]` r(s, a) of the reward model (`learned_rewards`; `encoded`: its state,
        `encode`'s first)."""
        from ganrl.policy.heuristics import learned_rewards

        return learned_rewards(self.reward_model, history, candidates, chunk, events, encoded)

    def shrink(
        self, history: tf.Tensor, candidates: tf.Tensor, chunk: int = 0, events=None, encoded=None
    ) -> tf.Tensor | None:
        """`[B, N]` u(s, a), or None where it is 1 (one model, or uncertainty 0); `encoded`:
        the members' states, `encode`'s rest."""
        if not self.members:
            return None
        return ensemble_shrink(
            self.members, history, candidates, self.uncertainty, chunk, events, encoded
        )

    def learned(self, history: tf.Tensor, candidates: tf.Tensor, events=None) -> tuple:
        """(`rewards`, `shrink`) with every user model encoded once."""
        encoded = self.encode(history, events)
        return (
            self.rewards(history, candidates, events=events, encoded=encoded[0]),
            self.shrink(history, candidates, events=events, encoded=encoded[1:]),
        )

    def score(
        self,
        history: tf.Tensor,
        candidates: tf.Tensor,
        learned: tf.Tensor,
        weight: tf.Tensor | float | None = None,
        reward: tf.Tensor | None = None,
        events: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """`[B, N]` w * (r + c u tanh(h)) for histories `[B, H]` (and recent display sets
        `events`, if known), candidates `[B, N]` and the policy's learned term h `[B, N]`
        (`reward`: r if already computed)."""
        if reward is None:
            reward, shrink = self.learned(history, candidates, events)
        else:
            shrink = self.shrink(history, candidates, events=events)
        return bounded_score(reward, learned, self.bound, shrink, weight)
