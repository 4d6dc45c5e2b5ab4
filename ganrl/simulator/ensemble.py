"""Several learned user models served as one simulator that knows where they disagree.

The members (user models trained with other seeds or on bootstrap resamples of the training
users) follow the same users: one set of candidates, one slate and one click per step, and each
member moves its own state on with that click. Per slate the ensemble knows every member's
click probabilities and expected reward; their spread is the simulator's uncertainty, large
where the logs said little.

Who clicks (`acting`):
  'member' (default): each user's clicks come from one member drawn at `reset`, so an episode is
    a consistent user of one plausible model (the rollouts of model-based offline RL draw a
    member per step; per episode keeps a member's own dynamics);
  'mean': the members' mean click probabilities.
The reward of a step is the acting model's reward of the realised outcome minus
`penalty * disagreement`, the disagreement being the standard deviation over members of the
slate's expected reward (mean - lambda * std, the pessimism of MOPO, Yu et al. 2020). Policies
trained with `penalty > 0` are paid less for slates only some members believe in.

Leaving (with `SimulatorConfig.leave`, as in `Simulator`): after each slate a user still
there leaves with her acting member's leave probability ('mean': the members' mean), each
member's from its own leave model under its own state (0 for a member without one). The
batch keeps its shape, `Observation.alive` marks who is still there, a user who left gets no
click and no reward, and the episode ends at the horizon or when everyone has left;
`session_lengths` holds each user's slates seen.

It has the `Simulator` interface, so every policy and `run_episodes` take either.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from ganrl.simulator.simulator import (
    Observation,
    Simulator,
    SimulatorConfig,
    StepResult,
    draw_candidates,
)
from ganrl.user_model import LoadedUserModel

ACTING = ("member", "mean")


class SlateStatistics(NamedTuple):
    """`[B]` tensors over the members: mean and standard deviation of a slate's expected
    reward, and the standard deviation of its click probability (1 - P(no click))."""

    reward_mean: tf.Tensor
    reward_std: tf.Tensor
    click_std: tf.Tensor


class EnsembleSimulator:
    """A batched simulator over `members`, with their disagreement per slate."""

    def __init__(
        self,
        members: Sequence[LoadedUserModel],
        config: SimulatorConfig,
        penalty: float = 0.0,
        acting: str = "member",
    ):
        if not members:
            raise ValueError("an ensemble needs at least one user model")
        if acting not in ACTING:
            raise ValueError(f"acting={acting!r}: expected one of {', '.join(ACTING)}")
        if not penalty >= 0:
            raise ValueError(f"penalty={penalty}: expected a non-negative number")
        self.members = [
            Simulator(model, dataclasses.replace(config, seed=config.seed + 7919 * i))
            for i, model in enumerate(members)
        ]
        first = self.members[0]
        for model, sim in zip(members, self.members):
            if sim.n_items != first.n_items:
                raise ValueError(
                    f"{model.run_dir}: {sim.n_items} items, expected "
                    f"{first.n_items} as in {members[0].run_dir}"
                )
            if sim.reward_kind != first.reward_kind:
                raise ValueError(
                    f"{model.run_dir}: pays the {sim.reward_kind} reward, expected "
                    f"the {first.reward_kind} reward of {members[0].run_dir} "
                    "(set the reward flag or train every member alike)"
                )
        self.config = config
        self.penalty = float(penalty)
        self.acting = acting
        self.model = members[0]
        self.n_items = first.n_items
        self.n_candidates = first.n_candidates
        self.reward_kind = first.reward_kind
        # The one stream of candidates, acting members and clicks (the members' own streams
        # are never drawn from after `reset`), so a checkpoint of it resumes the ensemble.
        self.rng = tf.random.Generator.from_seed(config.seed)
        self._acting_member = None
        self.leaves = config.leave and any(sim.leave_model is not None for sim in self.members)
        self._alive: tf.Tensor | None = None
        self._step = 0
        self.session_lengths = np.zeros(0, np.int64)
        self.last_statistics: SlateStatistics | None = None
        self.last_raw_reward: tf.Tensor | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def has_no_click(self) -> bool:
        return self.members[0].has_no_click

    def reset(self, batch_size: int, start_histories: list[list[int]] | None = None) -> Observation:
        """Starts `batch_size` users in every member and draws each user's acting member."""
        for sim in self.members:
            sim.reset(batch_size, start_histories)
        self._acting_member = self.rng.uniform([batch_size], 0, self.size, dtype=tf.int32)
        self._alive = tf.ones([batch_size], tf.bool)
        self._step = 0
        self.session_lengths = np.zeros(batch_size, np.int64)
        return self._observation()

    def _observation(self) -> Observation:
        batch = int(self._acting_member.shape[0])
        first = self.members[0].observation(
            draw_candidates(self.rng, batch, self.n_items, self.n_candidates)
        )
        return first._replace(step=self._step, alive=self._alive)

    def _outcomes(self, items: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`[M, B, k + 1]` every member's choice probabilities and option rewards."""
        probs = tf.stack([sim.choice_probabilities(items) for sim in self.members])
        rewards = tf.stack([sim.option_rewards(items) for sim in self.members])
        return probs, rewards

    @staticmethod
    def _statistics(probs: tf.Tensor, rewards: tf.Tensor) -> SlateStatistics:
        expected = tf.reduce_sum(probs * rewards, axis=-1)  # [M, B]
        return SlateStatistics(
            tf.reduce_mean(expected, 0),
            tf.math.reduce_std(expected, 0),
            tf.math.reduce_std(1.0 - probs[..., -1], 0),
        )

    def _acting_outcomes(self, probs: tf.Tensor, rewards: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`[B, k + 1]` the acting model's choice probabilities and option rewards."""
        if self.acting == "mean":
            return tf.reduce_mean(probs, 0), tf.reduce_mean(rewards, 0)
        index = tf.stack([self._acting_member, tf.range(tf.shape(probs)[1])], axis=1)
        return tf.gather_nd(probs, index), tf.gather_nd(rewards, index)

    def _acting_leave_probability(self, items: tf.Tensor, clicked: tf.Tensor) -> tf.Tensor:
        """`[B]` each user's P(leave) after `items` under her acting member ('mean': the
        members' mean), from the members' states before the slate."""
        every = tf.stack(
            [sim.leave_probabilities(items, clicked, self._step) for sim in self.members]
        )  # [M, B]
        if self.acting == "mean":
            return tf.reduce_mean(every, 0)
        return tf.gather(tf.transpose(every), self._acting_member, batch_dims=1)

    def step(self, observation: Observation, slate: tf.Tensor) -> StepResult:
        """Shows `slate [B, k]` (indices into `observation.candidates`), samples each user's
        outcome from her acting model and moves every member on with it."""
        if self._acting_member is None:
            raise RuntimeError("call reset() first")
        items = self.members[0].slate_items(observation, slate)
        probs, rewards = self._outcomes(items)
        acting_probs, acting_rewards = self._acting_outcomes(probs, rewards)
        gumbel = -tf.math.log(-tf.math.log(self.rng.uniform(tf.shape(acting_probs), 1e-20, 1.0)))
        choice = tf.argmax(
            tf.math.log(acting_probs + 1e-30) + gumbel, axis=-1, output_type=tf.int32
        )
        k = tf.shape(items)[1]
        alive = self._alive
        clicked = (choice < k) & alive
        clicked_item = tf.gather(items, tf.minimum(choice, k - 1), batch_dims=1)
        raw = tf.where(alive, tf.gather(acting_rewards, choice, batch_dims=1), 0.0)
        self.last_statistics = self._statistics(probs, rewards)
        self.last_raw_reward = raw
        penalty = self.penalty * tf.where(alive, self.last_statistics.reward_std, 0.0)
        reward = raw - penalty
        expected = tf.where(alive, tf.reduce_sum(acting_probs * acting_rewards, -1), 0.0) - penalty
        stays = alive
        if self.leaves:  # drawn only then, so an ensemble without leaving keeps its stream
            leave_draw = self.rng.uniform(tf.shape(alive))
            stays = alive & (leave_draw >= self._acting_leave_probability(items, clicked))
        self.session_lengths += alive.numpy()
        for sim in self.members:
            sim.advance(clicked_item, clicked, display=items, alive=alive)
        self._alive = stays
        self._step += 1
        next_obs = self._observation()
        return StepResult(
            next_obs,
            reward,
            clicked,
            tf.where(clicked, choice, -1),
            self._step >= self.config.horizon or not bool(tf.reduce_any(stays)),
            expected,
        )

    def slate_statistics(self, observation: Observation, slate: tf.Tensor) -> SlateStatistics:
        """The members' mean and disagreement for showing `slate [B, k]` now."""
        return self._statistics(*self._outcomes(self.members[0].slate_items(observation, slate)))

    def click_probabilities(self, observation: Observation, slate: tf.Tensor) -> tf.Tensor:
        """`[B, k + 1]` the members' mean probabilities of each slate item and no click."""
        probs, _ = self._outcomes(self.members[0].slate_items(observation, slate))
        return tf.reduce_mean(probs, 0)

    def expected_slate_reward(self, observation: Observation, slate: tf.Tensor) -> tf.Tensor:
        """`[B]` the members' mean expected reward of `slate` (no penalty)."""
        return self.slate_statistics(observation, slate).reward_mean

    def best_slate(self, observation: Observation) -> tf.Tensor:
        """`[B, k]` the candidates of highest mean log-probability of a click when every
        candidate is shown (shift-free, so members' utility scales agree)."""
        scores = tf.stack(
            [
                tf.nn.log_softmax(sim.utilities(observation.candidates), axis=-1)
                for sim in self.members
            ]
        )
        return tf.math.top_k(tf.reduce_mean(scores, 0), self.config.k).indices

    def expected_rewards(self, observation: Observation) -> tf.Tensor:
        """`[B, N]` the members' mean learned reward of every candidate."""
        return tf.reduce_mean(
            tf.stack([sim.expected_rewards(observation) for sim in self.members]), 0
        )
