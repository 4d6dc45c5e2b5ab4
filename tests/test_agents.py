"""PPO, A2C and DDPG: their maths by hand, valid slates, and learning on a bandit where one
slate is clearly best."""

import math

import numpy as np
import pytest
import tensorflow as tf

from ganrl.policy.actor_critic import (
    A2CConfig,
    PPOConfig,
    gae,
    n_step_returns,
    ppo_clip_loss,
    slate_log_prob,
)
from ganrl.policy.base import POLICIES, PolicyFeatures
from ganrl.policy.ddpg import DDPGConfig, ddpg_targets
from ganrl.policy.registry import names
from ganrl.policy.runner import run_episodes
from ganrl.simulator.simulator import Observation, StepResult

AGENTS = ("ppo", "a2c", "ddpg")


def test_gae_by_hand():
    # gamma 1, lambda 0.5: delta_0 = 1 + 0.5 - 0.5 = 1, delta_1 = 1 + 0 (done) - 0.5 = 0.5;
    # A_1 = 0.5, A_0 = 1 + 0.5 * 0.5 = 1.25.
    a = gae(
        np.array([[1.0], [1.0]]),
        np.array([[0.5], [0.5]]),
        np.array([[0.5], [9.0]]),
        np.array([[0.0], [1.0]]),
        gamma=1.0,
        lam=0.5,
    )
    np.testing.assert_allclose(a[:, 0], [1.25, 0.5])


def test_n_step_returns_stop_at_the_episode_end():
    # gamma 0.5, n 2, done after step 1: R_0 = 1 + 0.5 * 2 = 2 (no bootstrap past the end),
    # R_1 = 2, R_2 = 3 + 0.5 * V(s_3) = 3 + 0.5 * 30 = 18.
    r = n_step_returns(
        np.array([[1.0], [2.0], [3.0]]),
        np.array([[10.0], [20.0], [30.0]]),
        np.array([[0.0], [1.0], [0.0]]),
        gamma=0.5,
        n=2,
    )
    np.testing.assert_allclose(r[:, 0], [2.0, 2.0, 18.0])
    # n = 1 is the one-step target: r + gamma V(s') unless done.
    r1 = n_step_returns(
        np.array([[1.0], [2.0]]),
        np.array([[10.0], [20.0]]),
        np.array([[0.0], [1.0]]),
        gamma=0.5,
        n=1,
    )
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
    y = ddpg_targets(
        tf.constant([1.0, 1.0]), tf.constant([0.0, 1.0]), tf.constant([4.0, 4.0]), 0.5
    ).numpy()
    np.testing.assert_allclose(y, [3.0, 1.0])


class BanditSim:
    """A stand-in simulator with the `Observation` interface: 8 items (one-hot features), every
    user sees all 8 and has one clicked item c in her history (her context, drawn at reset);
    her best slate is {c + 1, c + 3} (mod 8), or {c + 1} when k = 1, and the reward is the
    share of it that the slate holds (1 for the best slate). Episodes of two steps."""

    n_items, horizon = 8, 2
    has_no_click = True

    def __init__(self, k: int, seed: int = 0):
        self.k, self.rng = k, np.random.default_rng(seed)

    def reset(self, users):
        self.t = 0
        context = self.rng.integers(0, self.n_items, users)
        self.history = np.full((users, 4), -1, np.int32)
        self.history[:, 0] = context
        self.best = (context[:, None] + np.array([1, 3])[: self.k]) % self.n_items  # [B, k]
        return self._obs()

    def _obs(self):
        users = len(self.history)
        return Observation(
            tf.constant(self.history), tf.tile(tf.range(self.n_items)[None], [users, 1]), self.t
        )

    def step(self, observation, slate):
        items = tf.gather(observation.candidates, tf.cast(slate, tf.int32), batch_dims=1)
        hits = (items.numpy()[:, :, None] == self.best[:, None, :]).any(axis=2)  # [B, k]
        self.t += 1
        index = np.where(hits.any(axis=1), hits.argmax(axis=1), -1).astype(np.int32)
        return StepResult(
            self._obs(),
            tf.constant(hits.mean(axis=1), tf.float32),
            tf.constant(hits.any(axis=1)),
            tf.constant(index),
            self.t >= self.horizon,
        )


# Per agent: constructor settings for this tiny bandit and the training episodes it needs.
# PPO makes 16 minibatch steps per rollout and learns in few episodes; A2C one step per
# rollout; DDPG's critic must first map the reward over the action sphere, and with 8 one-hot
# items it needs noise of about twice the action's norm to try every item and a faster target.
SETTINGS = {"ppo": ({}, 45), "a2c": ({}, 120), "ddpg": ({"noise_scale": 2.0, "tau": 0.1}, 150)}


# Per agent: its config class and, for DDPG, the replay minibatch.
CONFIGS = {"ppo": (PPOConfig, {}), "a2c": (A2CConfig, {}), "ddpg": (DDPGConfig, {"batch_size": 64})}


def _agent(name, k=1, seed=0, **overrides):
    features = PolicyFeatures(np.eye(8, dtype=np.float32))
    config_class, replay = CONFIGS[name]
    config = config_class(
        hidden=32, learning_rate=0.01, gamma=0.5, **dict(replay, **SETTINGS[name][0], **overrides)
    )
    return POLICIES[name](features, k, seed, config)


def test_agents_are_registered():
    assert set(AGENTS) <= set(names())


@pytest.mark.parametrize("name", AGENTS)
def test_slates_have_k_distinct_candidates(name):
    agent = _agent(name, k=3)
    obs = BanditSim(k=2).reset(5)
    for explore in (False, True):
        slate = agent.select(obs, explore=explore).numpy()
        assert slate.shape == (5, 3) and slate.min() >= 0 and slate.max() < 8
        assert all(len(set(row)) == 3 for row in slate)


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_on_policy_agents_update_on_full_rollouts_and_at_episode_ends(name):
    agent = _agent(name, rollout_steps=3)
    sim = BanditSim(k=1)
    sim.horizon = 4  # a rollout of 3 steps, then one cut short by the episode's end
    obs, updated = sim.reset(4), []
    for _ in range(sim.horizon):
        slate = agent.select(obs, explore=True)
        result = sim.step(obs, slate)
        agent.observe(
            obs, slate, result.reward, result.clicked_index, result.observation, result.done
        )
        updated.append("loss" in agent.train_step())
        obs = result.observation
    assert updated == [False, False, True, True] and agent.rollout == []


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("name", AGENTS)
def test_agent_learns_each_users_best_slate(name, k):
    sim, agent = BanditSim(k), _agent(name, k)
    random = np.mean(run_episodes(sim, POLICIES["random"](agent.features, k, 0), 512)[0])
    losses = []
    for _ in range(SETTINGS[name][1]):  # episodes of 32 users x 2 steps
        losses += run_episodes(sim, agent, 32, learn=True, explore=True)[2]
    trained = np.mean(run_episodes(sim, agent, 512)[0])
    assert losses and all(np.isfinite(losses))
    # A random slate holds each best item with probability k/8: mean reward k/8. A trained
    # agent must beat it by at least 0.5 (e.g. 0.125 -> above 0.625 for k = 1).
    assert random == pytest.approx(k / 8, abs=0.05)
    assert trained > random + 0.5, (random, trained)


def test_a_memory_field_added_later_is_unknown_in_earlier_rows_and_resumes():
    """CDQN's memory gains the recent display sets (`events`) with the first transition
    that has them; rows written before, and a state saved before, hold -1 (unknown)."""
    from ganrl.policy.replay import TransitionMemory

    memory = TransitionMemory(5, {"reward": ((), np.float32)}, seed=0)
    memory.add(reward=np.ones(2, np.float32))
    old_state = memory.state()
    memory.add(reward=np.zeros(1, np.float32), events=np.full((1, 2, 3), 7, np.int32))
    np.testing.assert_array_equal(memory.data["events"][:2], -1)
    np.testing.assert_array_equal(memory.data["events"][2], 7)
    resumed = TransitionMemory(5, {"reward": ((), np.float32)}, seed=0)
    resumed.load_state(memory.state())
    np.testing.assert_array_equal(resumed.data["events"][:3], memory.data["events"][:3])
    resumed.data["events"][:] = 7
    resumed.load_state(old_state)  # saved before the field existed: its rows are unknown
    assert resumed.size == 2
    np.testing.assert_array_equal(resumed.data["events"][:2], -1)


def test_ppo_with_fewer_rows_than_minibatches_takes_no_empty_step():
    # A rollout of 2 valid (user, step) rows (one user still there, two steps) and the default
    # 4 minibatches: each epoch splits the 2 rows into 2 minibatches of one row, not into 4
    # of which 2 are empty (an empty minibatch's mean loss is nan, and Adam would still move
    # the weights by its momentum on a step that saw no data).
    agent = _agent("ppo", k=1)
    assert agent.minibatches == 4
    obs = BanditSim(k=1).reset(3)

    def at(step, alive):
        return obs._replace(step=step, alive=tf.constant(alive))

    alive = [[True, False, False], [True, False, False], [False, False, False]]
    for t in range(2):
        slate = agent.select(at(t, alive[t]), explore=True)
        agent.observe(
            at(t, alive[t]),
            slate,
            np.array([1.0, 0.0, 0.0], np.float32),
            tf.constant([0, -1, -1]),
            at(t + 1, alive[t + 1]),
            t == 1,
        )
    steps = int(agent.optimizer.iterations.numpy())
    info = agent.train_step()
    assert np.isfinite(info["loss"])
    assert int(agent.optimizer.iterations.numpy()) - steps == agent.ppo_epochs * 2
