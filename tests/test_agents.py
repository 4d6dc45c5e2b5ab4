"""PPO, A2C and DDPG: their maths by hand, valid slates, and learning on a bandit where one
slate is clearly best."""

import math

import numpy as np
import pytest
import tensorflow as tf

from ganrl.policy.actor_critic import gae, n_step_returns, ppo_clip_loss, slate_log_prob
from ganrl.policy.base import POLICIES, PolicyFeatures
from ganrl.policy.ddpg import ddpg_targets
from ganrl.policy.registry import names
from ganrl.policy.runner import run_episodes
from ganrl.simulator.simulator import Observation, StepResult

AGENTS = ("ppo", "a2c", "ddpg")


def test_gae_by_hand():
    # gamma 1, lambda 0.5: delta_0 = 1 + 0.5 - 0.5 = 1, delta_1 = 1 + 0 (done) - 0.5 = 0.5;
    # A_1 = 0.5, A_0 = 1 + 0.5 * 0.5 = 1.25.
    a = gae(np.array([[1.0], [1.0]]), np.array([[0.5], [0.5]]), np.array([[0.5], [9.0]]),
            np.array([[0.0], [1.0]]), gamma=1.0, lam=0.5)
    np.testing.assert_allclose(a[:, 0], [1.25, 0.5])


def test_n_step_returns_stop_at_the_episode_end():
    # gamma 0.5, n 2, done after step 1: R_0 = 1 + 0.5 * 2 = 2 (no bootstrap past the end),
    # R_1 = 2, R_2 = 3 + 0.5 * V(s_3) = 3 + 0.5 * 30 = 18.
    r = n_step_returns(np.array([[1.0], [2.0], [3.0]]), np.array([[10.0], [20.0], [30.0]]),
                       np.array([[0.0], [1.0], [0.0]]), gamma=0.5, n=2)
    np.testing.assert_allclose(r[:, 0], [2.0, 2.0, 18.0])
    # n = 1 is the one-step target: r + gamma V(s') unless done.
    r1 = n_step_returns(np.array([[1.0], [2.0]]), np.array([[10.0], [20.0]]),
                        np.array([[0.0], [1.0]]), gamma=0.5, n=1)
    np.testing.assert_allclose(r1[:, 0], [6.0, 2.0])


def test_ppo_clipped_objective_by_hand():
    # rho = 1.5 with A = +2: min(3, 1.2 * 2) = 2.4 (clipped above);
    # rho = 0.5 with A = -1: min(-0.5, 0.8 * -1) = -0.8 (clipped below). Loss -(2.4 - 0.8)/2.
    loss = ppo_clip_loss(tf.math.log([1.5, 0.5]), tf.zeros(2), tf.constant([2.0, -1.0]), 0.2)
    assert float(loss) == pytest.approx(-0.8)
    # Inside the clip range the surrogate is rho A.
    inside = ppo_clip_loss(tf.math.log([1.1]), tf.zeros(1), tf.constant([3.0]), 0.2)
    assert float(inside) == pytest.approx(-3.3)


def test_slate_log_prob_is_plackett_luce():
    # Weights 1, 2, 3 (logits = log w): P(2 then 0) = 3/6 * 1/3 = 1/6.
    logits = tf.math.log([[1.0, 2.0, 3.0]])
    lp = slate_log_prob(logits, tf.constant([[2, 0]]))
    assert float(lp[0]) == pytest.approx(math.log(1 / 6), rel=1e-5)


def test_ddpg_target_by_hand():
    y = ddpg_targets(tf.constant([1.0, 1.0]), tf.constant([0.0, 1.0]), tf.constant([4.0, 4.0]),
                     0.5).numpy()
    np.testing.assert_allclose(y, [3.0, 1.0])


class BanditSim:
    """A stand-in simulator: empty histories, the same 8 candidates, reward 1 when the slate
    holds item 3 (one slate is clearly best), episodes of two steps."""

    n_items, best, horizon = 8, 3, 2
    has_no_click = True

    def reset(self, users):
        self.t, self.users = 0, users
        return self._obs()

    def _obs(self):
        return Observation(-tf.ones([self.users, 4], tf.int32),
                           tf.tile(tf.range(self.n_items)[None], [self.users, 1]), self.t)

    def step(self, observation, slate):
        items = tf.gather(observation.candidates, tf.cast(slate, tf.int32), batch_dims=1)
        hit = tf.reduce_any(items == self.best, axis=1)
        self.t += 1
        index = tf.where(hit, tf.argmax(tf.cast(items == self.best, tf.int32), 1,
                                         output_type=tf.int32), -1)
        return StepResult(self._obs(), tf.cast(hit, tf.float32), hit, index,
                          self.t >= self.horizon)


def _agent(name, k=1, seed=0):
    features = PolicyFeatures(np.eye(8, dtype=np.float32))
    return POLICIES[name](features, k, seed, hidden=16, learning_rate=0.01, batch_size=32,
                          gamma=0.5)


def test_agents_are_registered():
    assert set(AGENTS) <= set(names())


@pytest.mark.parametrize("name", AGENTS)
def test_slates_have_k_distinct_candidates(name):
    agent = _agent(name, k=3)
    obs = BanditSim().reset(5)
    for explore in (False, True):
        slate = agent.select(obs, explore=explore).numpy()
        assert slate.shape == (5, 3) and slate.min() >= 0 and slate.max() < 8
        assert all(len(set(row)) == 3 for row in slate)


@pytest.mark.parametrize("name", AGENTS)
def test_agent_learns_the_best_item(name):
    sim, agent = BanditSim(), _agent(name)
    random = np.mean(run_episodes(sim, POLICIES["random"](agent.features, 1, 0), 256)[0])
    losses = []
    for _ in range(60):  # 60 episodes of 32 users x 2 steps
        losses += run_episodes(sim, agent, 32, learn=True, explore=True)[2]
    trained = np.mean(run_episodes(sim, agent, 256)[0])
    assert losses and all(np.isfinite(losses))
    # Random finds item 3 one time in 8; a trained agent nearly always.
    assert random < 0.25 and trained > 0.9, (random, trained)
