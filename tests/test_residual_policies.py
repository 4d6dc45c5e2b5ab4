"""The bounded residual of PPO, A2C, DDPG and LinUCB (issue 18, item 5): the untrained policy
is GAN-Greedy, the learned part cannot promote an item more than 2c below the k-th best
learned reward, c = 0 is each policy as before, and old run folders load as they were."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from ganrl.policy.actor_critic import A2C, PPO, A2CConfig, PPOConfig
from ganrl.policy.base import PolicyFeatures
from ganrl.policy.ddpg import DDPG, DDPGConfig
from ganrl.policy.heuristics import GanGreedy, LinUCB, LinUCBConfig, learned_rewards
from ganrl.policy.residual import Residual, bounded_score, ensemble_shrink
from ganrl.policy.runner import LEGACY_RESIDUAL, PolicyConfig
from ganrl.simulator.simulator import Simulator, SimulatorConfig
from ganrl.user_model import load_user_model
from tests.policy_helpers import tiny_policy_config
from tests.test_policy import user_model_dir  # noqa: F401  (a fixture)

K = 3
POLICIES = ("ppo", "a2c", "ddpg", "linucb")


@pytest.fixture(scope="module")
def model(user_model_dir):  # noqa: F811
    return load_user_model(user_model_dir)


@pytest.fixture(scope="module")
def observation(model):
    """16 users of a tiny simulator (8 candidates each) after two steps of random slates,
    so that most have a history."""
    sim = Simulator(model, SimulatorConfig(k=K, n_candidates=8, seed=0, leave=False))
    obs = sim.reset(16)
    rng = np.random.default_rng(0)
    for _ in range(2):
        slate = tf.constant(np.argsort(rng.random((16, 8)), 1)[:, :K], tf.int32)
        obs = sim.step(obs, slate).observation
    return obs


def _policy(name: str, model, bound: float, alpha: float = 0.5):
    features = PolicyFeatures.from_user_model(model.reward)
    reward = {"reward_model": model.reward}
    if name == "ppo":
        return PPO(features, K, 1, PPOConfig(hidden=8, residual_bound=bound), **reward)
    if name == "a2c":
        return A2C(features, K, 1, A2CConfig(hidden=8, residual_bound=bound), **reward)
    if name == "ddpg":
        config = DDPGConfig(hidden=8, replay_capacity=8, residual_bound=bound)
        return DDPG(features, K, 1, config, **reward)
    return LinUCB(features, K, 1, LinUCBConfig(alpha=alpha, residual_bound=bound), **reward)


def _force_learned_part(policy, name: str) -> None:
    """Sets the learned part to large arbitrary values (a trained, saturating policy)."""
    if name in ("ppo", "a2c"):
        policy.net.out.assign(100.0 * tf.random.stateless_normal([8], [1, 2]))
    elif name == "ddpg":  # an arbitrary direction for every state
        layer = policy.actor.layers[-1]
        layer.kernel.assign(10.0 * tf.random.stateless_normal(layer.kernel.shape, [3, 4]))
        layer.bias.assign(10.0 * tf.random.stateless_normal(layer.bias.shape, [5, 6]))
    else:  # theta = A^-1 b large: the bandit is sure of arbitrary item values
        policy.b_vector.assign(100.0 * tf.random.stateless_normal(policy.b_vector.shape, [7, 8]))


def _greedy_slate(model, observation):
    features = PolicyFeatures.from_user_model(model.reward)
    return GanGreedy(features, K, reward_model=model.reward).select(observation).numpy()


@pytest.mark.parametrize("name", POLICIES)
def test_the_untrained_policy_is_gan_greedy(model, observation, name):
    # Frozen, LinUCB ranks by its ridge estimate, 0 before any observation: GAN-Greedy's
    # slate with the default alpha (its prior optimism only explores, below).
    policy = _policy(name, model, bound=1.0)
    np.testing.assert_array_equal(
        policy.select(observation).numpy(), _greedy_slate(model, observation)
    )


def _below_the_bound(model, observation, slates, bound):
    """`[B, k]` bool: the picked item's r is more than 2 * bound below the k-th best r."""
    r = learned_rewards(model.reward, observation.history, observation.candidates).numpy()
    kth = np.sort(r, axis=1)[:, -K]
    return np.take_along_axis(r, slates, axis=1) < kth[:, None] - 2.0 * bound - 1e-5


@pytest.mark.parametrize("name", POLICIES)
def test_a_saturated_learned_part_stays_within_2c_of_the_greedy_slate(model, observation, name):
    bound = 0.3  # the tiny model's r spans about 3.7 over a user's 8 candidates
    r = learned_rewards(model.reward, observation.history, observation.candidates).numpy()
    assert np.any(r < np.sort(r, axis=1)[:, -K : -K + 1] - 2.0 * bound)  # the bound binds
    greedy = _greedy_slate(model, observation)
    bounded, unbounded = _policy(name, model, bound), _policy(name, model, 0.0)
    for policy in (bounded, unbounded):
        _force_learned_part(policy, name)
    slates = bounded.select(observation).numpy()
    assert not _below_the_bound(model, observation, slates, bound).any()
    assert np.any(np.sort(slates, 1) != np.sort(greedy, 1))  # it does reorder near items
    # The same saturated policy without the bound picks items the user model finds poor.
    old = unbounded.select(observation).numpy()
    assert _below_the_bound(model, observation, old, bound).any()


def test_linucb_s_untrained_optimism_explores_within_the_bound(model, observation):
    policy = _policy("linucb", model, bound=0.3, alpha=0.5)
    exploring = policy.select(observation, explore=True).numpy()
    assert not _below_the_bound(model, observation, exploring, 0.3).any()
    # Optimism that differs much by item (A's scales spread, b = 0) reorders slates only
    # when exploring: frozen, the ridge estimate is still 0 and the slate GAN-Greedy's.
    wide = _policy("linucb", model, bound=5.0, alpha=1.0)
    scales = np.exp(np.random.default_rng(3).uniform(0.0, 6.0, wide.a_matrix.shape[0]))
    wide.a_matrix.assign(np.diag(scales).astype(np.float32))
    greedy = _greedy_slate(model, observation)
    assert np.any(wide.select(observation, explore=True).numpy() != greedy)
    np.testing.assert_array_equal(wide.select(observation).numpy(), greedy)


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_c0_actor_critic_logits_are_the_old_ones(model, observation, name):
    # Before issue 18: logit = o . elu(W_s s + W_x x + b) + alpha r, alpha learned from 1.
    policy = _policy(name, model, 0.0)
    net = policy.net
    assert net.greedy_weight is None and float(net.reward_weight.numpy()) == 1.0
    net.out.assign(tf.random.stateless_normal([8], [9, 9]))
    net.reward_weight.assign(0.7)
    state, feats, shrink = policy._inputs(observation.history, observation.candidates)
    assert shrink is None
    hidden = tf.nn.elu(net.state_part(state)[:, None, :] + net.item_part(feats))
    expected = tf.einsum("bnh,h->bn", hidden, net.out) + 0.7 * feats[..., -1]
    np.testing.assert_allclose(net.logits(state, feats).numpy(), expected.numpy(), rtol=1e-6)


def test_c0_ddpg_and_linucb_rank_as_before(model, observation):
    # DDPG: the k largest <mu(s), e_a>, the actor initialised as before (not at zero);
    # LinUCB: the k largest ucb. Neither uses the reward model.
    ddpg = _policy("ddpg", model, 0.0)
    assert not ddpg.residual.active
    assert np.abs(ddpg.actor.layers[-1].kernel.numpy()).max() > 0
    _, action = ddpg._action(observation.history)
    similarity = tf.einsum("bnd,bd->bn", ddpg.features.items(observation.candidates), action)
    np.testing.assert_array_equal(
        ddpg.select(observation).numpy(), tf.math.top_k(similarity, K).indices.numpy()
    )
    linucb = _policy("linucb", model, 0.0)
    _force_learned_part(linucb, "linucb")
    np.testing.assert_array_equal(
        linucb.select(observation, explore=True).numpy(),
        tf.math.top_k(linucb.ucb(observation), K).indices.numpy(),
    )
    np.testing.assert_array_equal(  # frozen: the ridge estimate
        linucb.select(observation).numpy(),
        tf.math.top_k(linucb.ucb(observation, width=False), K).indices.numpy(),
    )


def test_bounded_score_and_ensemble_shrink_by_hand(model, observation):
    # r = 1, h = atanh(0.5), c = 2, u = 0.5, w = 3: 3 * (1 + 2 * 0.5 * 0.5) = 4.5.
    score = bounded_score(tf.constant([1.0]), tf.atanh([0.5]), 2.0, tf.constant([0.5]), 3.0)
    np.testing.assert_allclose(score.numpy(), [4.5], rtol=1e-6)
    # Two members, the same model twice scaled by 1 and 3: std over members = |r|, so
    # u = exp(-2 |r|).
    history, candidates = observation.history, observation.candidates
    r = learned_rewards(model.reward, history, candidates).numpy()
    twice = _ScaledReward(model.reward, 3.0)
    u = ensemble_shrink((model.reward, twice), history, candidates, 2.0).numpy()
    np.testing.assert_allclose(u, np.exp(-2.0 * np.abs(r)), rtol=1e-4, atol=1e-6)
    # One member, no bound or no uncertainty: u = 1 (None).
    for residual in (
        Residual(model.reward, 1.0, 1.0, (model.reward,)),
        Residual(model.reward, 0.0, 1.0, (model.reward, twice)),
        Residual(model.reward, 1.0, 0.0, (model.reward, twice)),
        Residual(None, 1.0, 1.0, (model.reward, twice)),
    ):
        assert residual.shrink(history, candidates) is None


class _ScaledReward:
    """A user model whose learned reward is another's times `scale` (a second member)."""

    def __init__(self, model, scale):
        self.model, self.scale = model, scale

    def __getattr__(self, name):
        return getattr(self.model, name)

    def utilities(self, *args, **kwargs):
        return self.scale * self.model.utilities(*args, **kwargs)


def test_old_configs_have_no_residual_and_new_ones_the_default():
    saved = {"user_model_dir": "a", "test_user_model_dir": "b", "save_dir": "c"}
    old = PolicyConfig.from_dict(saved)  # a config.json written before the residual
    assert {name: getattr(old, name) for name in LEGACY_RESIDUAL} == LEGACY_RESIDUAL
    new = PolicyConfig(**saved)
    assert (new.residual_bound, new.residual_uncertainty) == (1.0, 1.0)
    assert PolicyConfig.from_dict({**saved, "residual_bound": 0.5}).residual_bound == 0.5
    with pytest.raises(ValueError, match=r"^residual_bound=-1: expected a non-negative number$"):
        PolicyConfig(**saved, residual_bound=-1)
    with pytest.raises(ValueError, match=r"^residual_bound=-1: expected a non-negative number$"):
        DDPGConfig(residual_bound=-1)
    # With an ensemble (two training members and a held-out one) each policy's residual
    # needs the members; without a bound or with one training model it does not.
    ensemble = PolicyConfig(**saved, ensemble_dirs=("d", "e"))
    assert ensemble.uses_ensemble("ppo") and ensemble.uses_ensemble("cdqn")
    assert not ensemble.uses_ensemble("gan_greedy")
    assert not PolicyConfig(**saved, ensemble_dirs=("d", "e"), residual_bound=0).uses_ensemble(
        "ddpg"
    )
    assert not new.uses_ensemble("linucb")


@pytest.mark.slow
def test_run_folders_load_and_serve_with_or_without_the_residual(
    user_model_dir,  # noqa: F811
    tmp_path,
):
    from ganrl.policy.export import load_policy, recommend
    from ganrl.policy.runner import PolicyRunner

    histories, candidates = np.array([[0, 1, -1, -1], [2, -1, -1, -1]]), np.arange(8)
    common = dict(policies=POLICIES, k=K, select_every=0, off_policy_users=0, history_length=4)
    new, old = str(tmp_path / "new"), str(tmp_path / "old")
    PolicyRunner(tiny_policy_config(user_model_dir, new, **common), progress=lambda _: None).run()
    PolicyRunner(
        tiny_policy_config(user_model_dir, old, residual_bound=0.0, **common),
        progress=lambda _: None,
    ).run()
    slates = {name: recommend(load_policy(old, name), histories, candidates) for name in POLICIES}
    path = os.path.join(old, "config.json")
    with open(path) as f:
        saved = json.load(f)
    with open(path, "w") as f:  # what a config.json written before the residual holds
        json.dump({k: v for k, v in saved.items() if k not in LEGACY_RESIDUAL}, f)
    for name in POLICIES:
        before = load_policy(old, name)
        assert not before.residual.active
        np.testing.assert_array_equal(recommend(before, histories, candidates), slates[name])
        after = load_policy(new, name)
        assert after.residual.active and after.residual.bound == 1.0
        slate = recommend(after, histories, candidates)
        assert slate.shape == (2, K) and all(len(set(row)) == K for row in slate)


def test_the_harness_runs_c0_in_its_own_policy_folder_beside_the_same_user_models(tmp_path):
    import dataclasses

    from ganrl.sim2real.harness import HarnessConfig

    base = HarnessConfig(save_dir=str(tmp_path))
    old = dataclasses.replace(base, cdqn=(("residual_bound", 0.0),))
    assert old.variant == "residual_bound0" and old.policy_dir != base.policy_dir
    assert old.run_dir == base.run_dir  # the same logs and user models
    with pytest.raises(ValueError, match=r"^residual_bound=-1.0: expected a non-negative number$"):
        HarnessConfig(cdqn=(("residual_bound", -1.0),))
