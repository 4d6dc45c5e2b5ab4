"""DDPG in item-embedding space (Lillicrap et al., 2016), as RecNN recommends with it.

The actor mu(s) outputs a vector in the item feature space (the `PolicyFeatures` item table),
normalised onto the sphere whose radius rho is the items' mean norm: mu(s) = rho f(s) / |f(s)|.
The slate is the k candidates of largest dot product <v, e_a> with the action vector v (the
similarity: unnormalised, so an item's norm counts as its general appeal; the ranking depends
only on v's direction, so fixing |v| loses nothing, and it keeps the critic's inputs where its
data are, instead of actions that grow without bound or saturate a tanh). The critic Q(s, v)
scores the state and an action vector. Training from a replay memory of (s, v, r, s', done), v
being the action vector acted on (with its exploration noise):
  critic: (Q(s, v) - y)^2,  y = r + gamma (1 - done) Q'(s', mu'(s'))   (`ddpg_targets`);
  actor:  -Q(s, mu(s));
target networks mu', Q' follow by soft updates theta' <- tau theta + (1 - tau) theta'.
Exploration (explore=True): v = rho normalise(mu(s) + eps), eps ~ N(0, sigma^2 I) with
sigma = noise_scale rho / sqrt(d), so |eps| is about noise_scale |mu(s)|; evaluation acts on
mu(s). Defaults: noise_scale 0.5, tau 0.01, gamma and the learning rate (actor and critic
alike) from the runner, a replay memory (`TransitionMemory`) of 100,000 transitions sampled
uniformly, one minibatch of `batch_size` per `train_step` once it holds that many. Actor and
critic are two ELU layers of `hidden` units and a linear output.

The bounded residual (`residual_bound` c > 0, the default, with the training user model
given; issue 18, `ganrl.policy.residual`): the slate is instead the k candidates of largest
  score(s, a) = r(s, a) + c * u(s, a) * tanh(<v, e_a> / rho),
r the user model's learned reward (GAN-Greedy's score), u the shrinking of the bound where an
ensemble of training user models disagrees (1 with one model). The scale rho makes
<v, e_a> / rho = <v / |v|, e_a> the item's coordinate along the action's direction: the item
table's columns are standardised (unit variance each), so over the items this coordinate has
unit variance on average over directions, and the tanh sorts the candidates by it without
saturating all of them (rho^2 would squeeze it to about 1 / sqrt(d) of the bound). The
actor's output layer starts at zero, so the untrained action vector is 0 (`_on_sphere` of 0
is 0) and the untrained slate is GAN-Greedy's; its first update gives it a direction. The
learned part moves a score by at most c, so no candidate whose r is more than 2c below
another's is picked before it. The replay memory and the critic's inputs are as before (the
action vector acted on). With c = 0 (or no reward model) the slate is the k nearest items
and the policy sees only item features and the state, not the learned reward (the policy
before issue 18).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.policy.base import Policy, PolicyFeatures, register, top_k_slate, transition_flags
from ganrl.policy.cdqn import cascading_td_targets
from ganrl.policy.replay import TransitionMemory
from ganrl.policy.residual import Residual
from ganrl.simulator.simulator import Observation

keras = tf.keras


def ddpg_targets(reward: tf.Tensor, done: tf.Tensor, next_q: tf.Tensor, gamma: float) -> tf.Tensor:
    """y = r + gamma (1 - done) Q'(s', mu'(s')); all `[B]` (the one-step TD target)."""
    return cascading_td_targets(reward, done, next_q, gamma)


def soft_update(target: list[tf.Variable], online: list[tf.Variable], tau: float) -> None:
    """theta' <- tau theta + (1 - tau) theta'."""
    for t, o in zip(target, online):
        t.assign(tau * o + (1.0 - tau) * t)


def _mlp(
    hidden: int, out: int, name: str, in_dim: int, zero_output: bool = False
) -> keras.Sequential:
    """Two ELU layers and a linear output (`zero_output`: its weights start at 0)."""
    start = "zeros" if zero_output else "glorot_uniform"
    net = keras.Sequential(
        [
            keras.layers.Dense(hidden, activation="elu"),
            keras.layers.Dense(hidden, activation="elu"),
            keras.layers.Dense(out, kernel_initializer=start),
        ],
        name=name,
    )
    net.build((None, in_dim))
    return net


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """Attributes:
    hidden: units of the actor's and the critic's hidden layers.
    gamma: the discount.
    learning_rate: Adam's learning rate (actor and critic).
    batch_size: the replay minibatch of an update.
    replay_capacity: transitions the replay memory keeps.
    tau: the soft update's weight of the online networks in the target ones.
    noise_scale: exploration noise, in units of the mean item norm spread over dimensions.
    residual_bound: c: the learned part moves a candidate's score by at most c in the learned
      reward's units around GAN-Greedy's (module docstring; needs the reward model); 0: the
      k nearest items to the action vector.
    uncertainty: with an ensemble of user models, the bound shrinks by exp(-uncertainty *
      the members' std of the item's learned reward) (0: not at all).
    """

    hidden: int = 64
    gamma: float = 0.9
    learning_rate: float = 1e-3
    batch_size: int = 256
    replay_capacity: int = 100_000
    tau: float = 0.01
    noise_scale: float = 0.5
    residual_bound: float = 1.0
    uncertainty: float = 1.0

    def __post_init__(self):
        config_checks.check(self, "a positive integer", "hidden", "batch_size", "replay_capacity")
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(self, "a number in [0, 1]", "gamma", "tau")
        config_checks.check(
            self, "a non-negative number", "noise_scale", "residual_bound", "uncertainty"
        )


@register("ddpg")
class DDPG(Policy):
    """Deep deterministic policy gradient with a k-nearest-items slate (module docstring)."""

    learns = True

    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int = 0,
        config: DDPGConfig = DDPGConfig(),
        *,
        reward_model=None,
        ensemble_models=(),
    ):
        """reward_model: the training user model, whose r(s, a) the bounded residual stays
        near (None: the k nearest items); ensemble_models: the user models of an ensemble
        simulator (two or more), whose disagreement on r(s, a) shrinks the bound."""
        super().__init__(features, k, seed)
        tf.keras.utils.set_random_seed(seed)
        hidden, learning_rate = config.hidden, config.learning_rate
        self.gamma, self.batch_size, self.tau = config.gamma, config.batch_size, config.tau
        self.residual = Residual(
            reward_model, config.residual_bound, config.uncertainty, ensemble_models
        )
        s, d = features.state_dim, features.item_dim
        self.actor, self.actor_target = (
            _mlp(hidden, d, n, s, zero_output=self.residual.active) for n in ("actor", "actor_t")
        )
        self.critic, self.critic_target = (
            _mlp(hidden, 1, n, s + d) for n in ("critic", "critic_t")
        )
        self.actor_target.set_weights(self.actor.get_weights())
        self.critic_target.set_weights(self.critic.get_weights())
        self.actor_opt = keras.optimizers.Adam(learning_rate)
        self.critic_opt = keras.optimizers.Adam(learning_rate)
        self.actor_opt.build(self.actor.trainable_variables)
        self.critic_opt.build(self.critic.trainable_variables)
        self.radius = float(np.linalg.norm(features.item_table.numpy(), axis=1).mean())
        self.noise = config.noise_scale * self.radius / np.sqrt(d)  # per dimension
        self.replay = TransitionMemory(
            config.replay_capacity,
            {
                "state": ((s,), np.float32),
                "action": ((d,), np.float32),
                "reward": ((), np.float32),
                "next_state": ((s,), np.float32),
                "done": ((), np.float32),
            },
            seed,
        )
        self._acted = None  # (state [B, S], action vector [B, d]) of the last selection

    def _on_sphere(self, vectors: tf.Tensor) -> tf.Tensor:
        """`[B, d]` vectors scaled to norm rho."""
        return self.radius * tf.math.l2_normalize(vectors, axis=-1)

    @staticmethod
    def _q(critic: keras.Model, state: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
        """`[B]` Q(s, v)."""
        return critic(tf.concat([state, action], axis=-1))[:, 0]

    @tf.function(reduce_retracing=True)
    def _action(self, history):
        """(`[B, S]` state, `[B, d]` mu(s))."""
        state = self.features.state(history)
        return state, self._on_sphere(self.actor(state))

    @tf.function(reduce_retracing=True)
    def _nearest(self, action, candidates):
        similarity = tf.einsum("bnd,bd->bn", self.features.items(candidates), action)
        return top_k_slate(similarity, self.k)

    @tf.function(reduce_retracing=True)
    def _bounded(self, history, action, candidates, events=None):
        """The top k by r + c u tanh(<v, e_a> / rho) (module docstring); r reads the users'
        recent display sets when known (the actor and critic see the clicks alone)."""
        similarity = tf.einsum("bnd,bd->bn", self.features.items(candidates), action)
        scores = self.residual.score(history, candidates, similarity / self.radius, events=events)
        return top_k_slate(scores, self.k)

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        state, action = self._action(observation.history)
        if explore:
            noise = self.rng.normal(size=action.shape).astype(np.float32) * self.noise
            action = self._on_sphere(action + noise)
        self._acted = (state.numpy(), action.numpy())
        return self._slate(observation, action)

    def select_graph(self, observation: Observation) -> tf.Tensor:
        """The frozen selection, traceable (for exports): `[B, k]` candidate indices."""
        return self._slate(observation, self._action(observation.history)[1])

    def _slate(self, observation: Observation, action: tf.Tensor) -> tf.Tensor:
        if self.residual.active:
            return self._bounded(
                observation.history, action, observation.candidates, observation.events
            )
        return self._nearest(action, observation.candidates)

    def observe(self, observation, slate, reward, clicked_index, next_observation, done):
        state, action = self._acted
        # Only users still there when shown the slate; a user's last slate is terminal.
        valid, terminal = transition_flags(observation, next_observation, done)
        self.replay.add(
            state=state[valid],
            action=action[valid],
            reward=np.asarray(reward, np.float32)[valid],
            next_state=self.features.state(next_observation.history).numpy()[valid],
            done=terminal[valid],
        )

    @tf.function(reduce_retracing=True)
    def _update(self, state, action, reward, next_state, done):
        next_action = self._on_sphere(self.actor_target(next_state))
        next_q = self._q(self.critic_target, next_state, next_action)
        y = tf.stop_gradient(ddpg_targets(reward, done, next_q, self.gamma))
        with tf.GradientTape() as tape:
            critic_loss = tf.reduce_mean(tf.square(y - self._q(self.critic, state, action)))
        grads = tape.gradient(critic_loss, self.critic.trainable_variables)
        self.critic_opt.apply_gradients(zip(grads, self.critic.trainable_variables))
        with tf.GradientTape() as tape:
            actor_loss = -tf.reduce_mean(
                self._q(self.critic, state, self._on_sphere(self.actor(state)))
            )
        grads = tape.gradient(actor_loss, self.actor.trainable_variables)
        self.actor_opt.apply_gradients(zip(grads, self.actor.trainable_variables))
        soft_update(self.actor_target.weights, self.actor.weights, self.tau)
        soft_update(self.critic_target.weights, self.critic.weights, self.tau)
        return critic_loss

    def train_step(self) -> dict:
        if self.replay.size < self.batch_size:
            return {}
        batch = self.replay.sample(self.batch_size)
        loss = self._update(**{k: tf.constant(v) for k, v in batch.items()})
        return {"loss": float(loss)}

    def checkpoint_objects(self) -> dict:
        from ganrl.user_model.model import checkpoint_variables

        return checkpoint_variables(
            actor=self.actor,
            actor_t=self.actor_target,
            critic=self.critic,
            critic_t=self.critic_target,
            actor_opt=self.actor_opt,
            critic_opt=self.critic_opt,
        )
