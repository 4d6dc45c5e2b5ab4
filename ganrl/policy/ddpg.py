"""DDPG in item-embedding space (Lillicrap et al., 2016), as RecNN recommends with it.

The actor mu(s) outputs a vector in the item feature space (the `PolicyFeatures` item table);
the slate is the k candidates with the largest dot product <mu(s), e_a> (the similarity:
unnormalised, so an item's norm counts as its general appeal). The critic Q(s, v) scores the
state and an action vector. Training from a replay memory of (s, v, r, s', done), v being the
action vector acted on (with its exploration noise):
  critic: (Q(s, v) - y)^2,  y = r + gamma (1 - done) Q'(s', mu'(s'))   (`ddpg_targets`);
  actor:  -Q(s, mu(s));
target networks mu', Q' follow by soft updates theta' <- tau theta + (1 - tau) theta'.
Exploration: Gaussian noise of `noise_scale` times the item table's per-dimension standard
deviation added to mu(s). The actor learns at a tenth of the critic's learning rate.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ganrl.policy.base import Policy, PolicyFeatures, register, top_k_slate
from ganrl.policy.cdqn import cascading_td_targets
from ganrl.simulator.simulator import Observation

keras = tf.keras


def ddpg_targets(reward: tf.Tensor, done: tf.Tensor, next_q: tf.Tensor,
                 gamma: float) -> tf.Tensor:
    """y = r + gamma (1 - done) Q'(s', mu'(s')); all `[B]` (the one-step TD target)."""
    return cascading_td_targets(reward, done, next_q, gamma)


def soft_update(target: list[tf.Variable], online: list[tf.Variable], tau: float) -> None:
    """theta' <- tau theta + (1 - tau) theta'."""
    for t, o in zip(target, online):
        t.assign(tau * o + (1.0 - tau) * t)


def _mlp(hidden: int, out: int, name: str, in_dim: int) -> keras.Sequential:
    net = keras.Sequential([keras.layers.Dense(hidden, activation="elu"),
                            keras.layers.Dense(hidden, activation="elu"),
                            keras.layers.Dense(out)], name=name)
    net.build((None, in_dim))
    return net


@register("ddpg")
class DDPG(Policy):
    """Deep deterministic policy gradient with a k-nearest-items slate (module docstring)."""

    learns = True

    def __init__(self, features: PolicyFeatures, k: int, seed: int = 0, *, hidden: int = 64,
                 gamma: float = 0.9, learning_rate: float = 1e-3, batch_size: int = 256,
                 replay_capacity: int = 100_000, tau: float = 0.01, noise_scale: float = 0.3,
                 **_):
        super().__init__(features, k, seed)
        tf.keras.utils.set_random_seed(seed)
        self.gamma, self.batch_size, self.tau = gamma, batch_size, tau
        s, d = features.state_dim, features.item_dim
        self.actor, self.actor_target = (_mlp(hidden, d, n, s) for n in ("actor", "actor_t"))
        self.critic, self.critic_target = (_mlp(hidden, 1, n, s + d)
                                           for n in ("critic", "critic_t"))
        self.actor_target.set_weights(self.actor.get_weights())
        self.critic_target.set_weights(self.critic.get_weights())
        self.actor_opt = keras.optimizers.Adam(learning_rate * 0.1)
        self.critic_opt = keras.optimizers.Adam(learning_rate)
        self.actor_opt.build(self.actor.trainable_variables)
        self.critic_opt.build(self.critic.trainable_variables)
        self.noise = noise_scale * np.std(features.item_table.numpy(), axis=0)
        self.capacity, self.size, self.cursor = replay_capacity, 0, 0
        self.memory = {"state": np.zeros((replay_capacity, s), np.float32),
                       "action": np.zeros((replay_capacity, d), np.float32),
                       "reward": np.zeros(replay_capacity, np.float32),
                       "next_state": np.zeros((replay_capacity, s), np.float32),
                       "done": np.zeros(replay_capacity, np.float32)}
        self._acted = None

    @tf.function(reduce_retracing=True)
    def _action(self, history):
        state = self.features.state(history)
        return state, self.actor(state)

    @tf.function(reduce_retracing=True)
    def _nearest(self, action, candidates):
        return top_k_slate(tf.einsum("bnd,bd->bn", self.features.items(candidates), action),
                           self.k)

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        state, action = self._action(observation.history)
        if explore:
            action = action + self.rng.normal(size=action.shape).astype(np.float32) * self.noise
        self._acted = (state.numpy(), np.asarray(action, np.float32))
        return self._nearest(tf.constant(action, tf.float32), observation.candidates)

    def observe(self, observation, slate, reward, clicked_index, next_observation, done):
        state, action = self._acted
        next_state = self.features.state(next_observation.history).numpy()
        n = len(state)
        rows = (self.cursor + np.arange(n)) % self.capacity
        for key, value in (("state", state), ("action", action), ("reward", reward),
                           ("next_state", next_state), ("done", float(done))):
            self.memory[key][rows] = value
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    @tf.function(reduce_retracing=True)
    def _update(self, state, action, reward, next_state, done):
        next_q = self.critic_target(tf.concat([next_state, self.actor_target(next_state)],
                                              -1))[:, 0]
        y = tf.stop_gradient(ddpg_targets(reward, done, next_q, self.gamma))
        with tf.GradientTape() as tape:
            q = self.critic(tf.concat([state, action], -1))[:, 0]
            critic_loss = tf.reduce_mean(tf.square(y - q))
        grads = tape.gradient(critic_loss, self.critic.trainable_variables)
        self.critic_opt.apply_gradients(zip(grads, self.critic.trainable_variables))
        with tf.GradientTape() as tape:
            actor_loss = -tf.reduce_mean(
                self.critic(tf.concat([state, self.actor(state)], -1)))
        grads = tape.gradient(actor_loss, self.actor.trainable_variables)
        self.actor_opt.apply_gradients(zip(grads, self.actor.trainable_variables))
        soft_update(self.actor_target.weights, self.actor.weights, self.tau)
        soft_update(self.critic_target.weights, self.critic.weights, self.tau)
        return critic_loss

    def train_step(self) -> dict:
        if self.size < self.batch_size:
            return {}
        rows = self.rng.integers(0, self.size, self.batch_size)
        loss = self._update(**{k: tf.constant(v[rows]) for k, v in self.memory.items()})
        return {"loss": float(loss)}

    def checkpoint_objects(self) -> dict:
        from ganrl.user_model.model import checkpoint_variables
        return checkpoint_variables(actor=self.actor, actor_t=self.actor_target,
                                    critic=self.critic, critic_t=self.critic_target,
                                    actor_opt=self.actor_opt, critic_opt=self.critic_opt)
