"""Simulator, cascading DQN maths, baselines and the policy protocol."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ganrl.policy.base import PolicyFeatures
from ganrl.policy.cdqn import CascadingQNetwork, cascade_select, cascading_td_targets
from ganrl.policy.heuristics import linucb_update, pair_features
from ganrl.simulator.simulator import Observation, Simulator, SimulatorConfig
from ganrl.train import user_model as trainer
from ganrl.user_model import load_user_model
from ganrl.user_model.model import ModelConfig
from tests.policy_helpers import tiny_policy_config
from tests.tiny_data import train_tiny_user_model, write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cascade_picks_the_best_slate_of_a_hand_made_q():
    # Q^1 prefers item 2; Q^2 rewards item 0 only after item 2 was picked (else item 1).
    def scores(j, picked):
        if j == 0:
            return tf.constant([[0.0, 1.0, 5.0, 0.5]])
        after_two = tf.cast(tf.reduce_any(picked == 2, axis=1), tf.float32)[:, None]
        return tf.constant([[0.0, 2.0, 9.0, 1.0]]) + after_two * tf.constant([[3.0, 0, 0, 0]])

    slate = cascade_select(scores, 1, 4, 3).numpy()
    # Position 1: item 2. Position 2: item 2 is taken (9.0 ignored), item 0 scores 3: pick 0.
    # Position 3: remaining {1: 2.0, 3: 1.0}: pick 1.
    assert slate.tolist() == [[2, 0, 1]]


def test_cascade_never_repeats_items():
    rng = np.random.default_rng(0)
    q = tf.constant(rng.normal(size=(50, 8)), tf.float32)
    slate = cascade_select(lambda j, picked: q, 50, 8, 8).numpy()
    assert all(len(set(row)) == 8 for row in slate)


def test_td_targets_by_hand():
    y = cascading_td_targets(
        tf.constant([1.0, 2.0]), tf.constant([0.0, 1.0]), tf.constant([10.0, 10.0]), 0.9
    ).numpy()
    np.testing.assert_allclose(y, [1.0 + 0.9 * 10.0, 2.0])  # no bootstrap after the end


@pytest.mark.parametrize("residual,bound", [(False, 0.0), (True, 0.0), (True, 0.7)])
def test_slate_q_agrees_with_the_cascade_scores(residual, bound):
    tf.keras.utils.set_random_seed(1)
    net = CascadingQNetwork(k=3, hidden=8, reward_residual=residual, residual_bound=bound)
    net.build_for(state_dim=4, item_dim=5)
    if residual:  # a trained network: non-zero output weights and reward weights
        net.out.assign(tf.random.normal([3, 8]))
        (net.greedy_weight if bound else net.reward_weight).assign([0.5, 2.0, -1.0])
    state = tf.random.normal([2, 4])
    cands = tf.random.normal([2, 6, 5])
    scorer = net.position_scorer(state, cands)
    slate = cascade_select(scorer, 2, 6, 3)
    q = net.slate_q(state, tf.gather(cands, slate, batch_dims=1)).numpy()
    for j in range(3):
        expected = tf.gather(scorer(j, slate[:, :j]), slate[:, j], batch_dims=1).numpy()
        np.testing.assert_allclose(q[:, j], expected, rtol=1e-5, atol=1e-5)


def test_linucb_update_by_hand():
    a = tf.Variable(tf.eye(2))
    b = tf.Variable(tf.zeros(2))
    x = tf.constant([[[1.0, 0.0], [0.0, 2.0]]])
    linucb_update(a, b, x, tf.constant([[3.0, 0.0]]))
    # A = I + e1 e1^T + (0,2)(0,2)^T = diag(2, 5); b = 3 * (1, 0).
    np.testing.assert_allclose(a.numpy(), [[2.0, 0.0], [0.0, 5.0]])
    np.testing.assert_allclose(b.numpy(), [3.0, 0.0])


def test_pair_features_by_hand():
    features = PolicyFeatures(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], np.float32))
    history = tf.constant([[1, 0, -1]])  # clicked items 1 then 0; one empty slot
    x = pair_features(features, history, tf.constant([[2, 0]])).numpy()
    # mean of the clicked items' features (0.5, 1); seen: item 0 yes, item 2 no.
    np.testing.assert_allclose(x[0], [[3.0, 1.0, 1.5, 1.0, 0.0], [1.0, 0.0, 0.5, 0.0, 1.0]])


def test_policy_features_standardise_the_model_s_item_descriptors():
    class Model:
        def item_descriptors(self):
            return np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])

    table = PolicyFeatures.from_user_model(Model()).item_table.numpy()
    # columns: mean 3, std sqrt(8/3); constant -> 0; mean 2, std sqrt(8/3).
    z = np.sqrt(1.5)
    np.testing.assert_allclose(table, [[-z, 0, -z], [0, 0, 0], [z, 0, z]], rtol=1e-6)


@pytest.fixture(scope="module")
def user_model_dir(tmp_path_factory):
    return train_tiny_user_model(tmp_path_factory.mktemp("um"))


def test_policies_fitted_to_the_logs_see_the_user_model_s_resplit(tmp_path):
    # A user model trained on a resplit (seed 7): the most-popular policy counts the clicks
    # of that model's training users, not of the dataset's own training split.
    from ganrl.data.dataset import load_split_data
    from ganrl.policy.runner import PolicyConfig, PolicyRunner

    write_tiny_dataset(tmp_path / "data", n_users=24, no_click_every=4)
    data = load_split_data(str(tmp_path / "data"), "tiny", resplit_seed=7)
    model = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
    config = trainer.TrainConfig(
        dataset="tiny",
        data_folder=str(tmp_path / "data"),
        save_dir=str(tmp_path / "run"),
        num_itrs=2,
        eval_every=2,
        batch_size=8,
        learning_rate=0.05,
        seed=7,
        resplit=True,
        model=model,
    )
    trainer.UserModelRunner(config, data, progress=lambda _: None).run()
    runner = PolicyRunner(
        PolicyConfig(
            user_model_dir=str(tmp_path / "run"),
            test_user_model_dir=str(tmp_path / "run"),
            save_dir=str(tmp_path / "policy"),
            k=2,
            horizon=2,
        ),
        progress=lambda _: None,
    )

    def click_counts(events):
        clicked = events.clicked_item
        return np.bincount(clicked[clicked >= 0], minlength=data.n_items)

    own_split = load_split_data(str(tmp_path / "data"), "tiny").splits["train"]
    resplit = click_counts(data.splits["train"])
    assert not np.array_equal(resplit, click_counts(own_split))  # the test can tell them apart
    popularity = runner._policy("most_popular").popularity.numpy()
    # Counts plus tie-breaking noise below 1e-3.
    np.testing.assert_allclose(popularity, resplit, atol=1e-3)


def test_simulated_click_frequencies_match_the_choice_model(user_model_dir):
    model = load_user_model(user_model_dir)
    sim = Simulator(model, SimulatorConfig(k=3, horizon=1, seed=3))
    users = 4000
    obs = sim.reset(users)
    slate = tf.tile(tf.constant([[0, 5, 7]]), [users, 1])
    probs = sim.click_probabilities(obs, slate).numpy()[0]
    result = sim.step(obs, slate)
    index = result.clicked_index.numpy()
    freq = np.bincount(np.where(index < 0, 3, index), minlength=4) / users
    # Every user has the same (empty) history, so one distribution: within 4 standard errors.
    tolerance = 4 * np.sqrt(probs * (1 - probs) / users) + 1e-3
    assert np.all(np.abs(freq - probs) <= tolerance), (freq, probs)
    assert model.behavior.has_no_click and probs[3] > 0


class StateShifted:
    """A reward model whose utilities carry a state-only shift f(s) (3 x the sum of the
    encoded state's float parts): the same choices, a different learned reward."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def utilities(self, state, items, mask=None):
        parts = [
            tf.reshape(part, [tf.shape(items)[0], -1])
            for part in tf.nest.flatten(self.inner.state_vector(state))
            if part.dtype.is_floating
        ]
        shift = 3.0 * tf.reduce_sum(tf.concat(parts, axis=1), axis=1, keepdims=True)
        return self.inner.utilities(state, items, mask) + shift

    def rewards(self, state, items):
        r = self.utilities(state, items)
        logit = self.inner.model.no_click_logit
        return r if logit is None else r - logit


def centred_run(model, shifted: bool, reward: str = "centred"):
    """Rewards and clicks of 3 steps of a fixed slate for 6 users with different histories."""
    sim = Simulator(model, SimulatorConfig(k=3, horizon=3, seed=5, reward=reward, leave=False))
    if shifted:
        sim.reward = StateShifted(sim.reward)
    obs = sim.reset(6, start_histories=[[0], [1, 2], [3], [4, 5, 6], [7], []])
    slate = tf.tile(tf.constant([[0, 1, 2]]), [6, 1])
    rewards, clicks = [], []
    for _ in range(3):
        result = sim.step(obs, slate)
        obs = result.observation
        rewards.append(result.reward.numpy())
        clicks.append(result.clicked_index.numpy())
    return np.array(rewards), np.array(clicks)


def test_centred_reward_by_hand(user_model_dir):
    model = load_user_model(user_model_dir)
    sim = Simulator(model, SimulatorConfig(k=3, horizon=1, seed=5, reward="centred", leave=False))
    obs = sim.reset(4, start_histories=[[0], [1, 2], [3], []])
    catalogue = tf.tile(tf.range(model.n_items)[None], [4, 1])
    utilities = sim.reward.utilities(sim._state[1], catalogue).numpy()
    slate = tf.tile(tf.constant([[0, 5, 7]]), [4, 1])
    result = sim.step(obs, slate)
    index = result.clicked_index.numpy()
    items = np.array([0, 5, 7])
    expected = np.where(
        index >= 0,
        utilities[np.arange(4), items[np.maximum(index, 0)]] - utilities.mean(axis=1),
        0.0,
    )
    np.testing.assert_allclose(result.reward.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert model.n_items <= 512  # the tiny catalogue is its own reference


def test_centred_reward_ignores_a_state_only_shift(user_model_dir):
    # A shift f(s) that depends only on the state changes no choice, so the logs cannot tell
    # it; the learned reward pays it, the centred reward does not.
    model = load_user_model(user_model_dir)
    plain, plain_clicks = centred_run(model, shifted=False)
    shifted, shifted_clicks = centred_run(model, shifted=True)
    np.testing.assert_array_equal(plain_clicks, shifted_clicks)
    assert (plain_clicks >= 0).any()
    np.testing.assert_allclose(plain, shifted, rtol=1e-4, atol=1e-5)
    learned, _ = centred_run(model, shifted=False, reward="learned")
    learned_shifted, _ = centred_run(model, shifted=True, reward="learned")
    assert np.abs(learned - learned_shifted).max() > 0.1


def test_reference_items_are_the_catalogue_or_a_fixed_draw():
    from ganrl.simulator.simulator import REFERENCE_ITEMS, reference_items

    np.testing.assert_array_equal(reference_items(7).numpy(), np.arange(7))
    drawn = reference_items(5000).numpy()
    assert len(drawn) == len(np.unique(drawn)) == REFERENCE_ITEMS
    assert drawn.min() >= 0 and drawn.max() < 5000 and np.all(np.diff(drawn) > 0)
    np.testing.assert_array_equal(drawn, reference_items(5000).numpy())


def test_gymnasium_env_checker(user_model_dir):
    from gymnasium.utils.env_checker import check_env

    from ganrl.simulator.gym_env import RecommendationEnv

    env = RecommendationEnv(load_user_model(user_model_dir), SimulatorConfig(k=2, horizon=3))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    total = 0
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += 1
    # This model has no leave model: the horizon cuts the session (a time limit: truncated).
    assert env.sim.leave_model is None and truncated and not terminated and total == 3
    # An ended episode takes no more steps (rewards past the horizon would count silently).
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="before reset"):
        RecommendationEnv(env.user_model, env.sim_config).step(env.action_space.sample())
    env.reset(seed=1)
    n_candidates = int(env.action_space.nvec[0])
    for bad, message in [
        ([0, 1, 2], r"action of shape \(3,\): expected \(2,\)"),
        ([0, n_candidates], rf"expected integer candidate indices 0\.\.{n_candidates - 1}"),
        ([-1, 0], "expected integer candidate indices"),
        ([0.5, 1.0], "expected integer candidate indices"),
    ]:
        with pytest.raises(ValueError, match=message):
            env.step(bad)


def test_policy_protocol_smoke_and_resume(user_model_dir, tmp_path):
    from ganrl.policy.runner import PolicyConfig, PolicyRunner

    config = PolicyConfig(
        user_model_dir=user_model_dir,
        test_user_model_dir=user_model_dir,
        save_dir=str(tmp_path / "policy"),
        k=2,
        horizon=2,
        num_itrs=4,
        batch_size=4,
        train_batch_size=4,
        eval_users=8,
        adapt_itrs=2,
        regret_itrs=4,
        epsilon_steps=4,
        hidden=8,
        checkpoint_secs=0,
    )
    results = PolicyRunner(config, progress=lambda _: None).run()
    assert set(results["policies"]) == set(config.policies)
    # Click reward (the model learned no-click): the best slate is exact, regret only grows.
    for curve in results["regret"].values():
        assert len(curve) == 4 and np.all(np.diff(curve) >= -1e-6) and curve[0] >= -1e-6
    assert results["has_no_click"] and "ctr" in results["policies"]["random"]
    assert (tmp_path / "policy" / "curves.png").stat().st_size > 0
    # The tested CDQN is the snapshot best on the training simulator's validation.
    best = json.loads(
        (tmp_path / "policy" / "checkpoints" / "cdqn__train_best" / "best.json").read_text()
    )
    assert 0 <= best["episode"] <= 2 and math.isfinite(best["score"])
    assert len(best["start_rewards"]) == config.select_users
    assert best["score"] >= 0.0  # the untrained start itself scores 0
    # The start's and the snapshot's logged clicks, by both estimators the logs check.
    assert set(best["start_logged"]) == set(best["logged"]) == {"snips", "dr"}
    assert all(math.isfinite(v) for v in [*best["start_logged"].values(), *best["logged"].values()])
    # A rerun of a finished run trains nothing and returns the same results.
    lines = []
    again = PolicyRunner(config, progress=lines.append).run()
    assert again == results and lines == []
    # A policy added to a finished run is trained alone; the others are reused.
    import dataclasses

    fewer = dataclasses.replace(
        config, save_dir=str(tmp_path / "grow"), policies=("gan_greedy", "random")
    )
    first = PolicyRunner(fewer, progress=lambda _: None).run()
    lines = []
    grown = PolicyRunner(
        dataclasses.replace(fewer, policies=("gan_greedy", "random", "most_popular")),
        progress=lines.append,
    ).run()
    assert [line.split(":")[0].strip() for line in lines] == ["most_popular"]
    assert grown["policies"]["random"] == first["policies"]["random"]


def test_a_policy_trains_alike_whichever_policies_come_before_it(user_model_dir, tmp_path):
    """The training simulator's stream of a policy is a function of the run's seed and the
    policy's name: PPO trained first must not change LinUCB's training or its snapshot."""
    import dataclasses

    from ganrl.policy.runner import PolicyRunner

    config = tiny_policy_config(
        user_model_dir, tmp_path / "alone", policies=("linucb",), num_itrs=8, eval_users=8
    )
    alone = PolicyRunner(config, progress=lambda _: None).run()
    after = PolicyRunner(
        dataclasses.replace(config, save_dir=str(tmp_path / "after"), policies=("ppo", "linucb")),
        progress=lambda _: None,
    ).run()

    def linucb_rows(folder):
        lines = (tmp_path / folder / "curves.csv").read_text().splitlines()
        return [line for line in lines if line.startswith("linucb,")]

    assert len(linucb_rows("alone")) >= 4
    assert linucb_rows("after") == linucb_rows("alone")
    for key in ("cumulative_reward", "session_length"):
        assert after["policies"]["linucb"][key] == alone["policies"]["linucb"][key]


def test_selection_score_is_the_lower_bound_of_the_paired_gain_by_hand():
    from ganrl.policy.runner import selection_score

    start = np.array([1.0, 2.0, 3.0, 4.0])
    # Gains 1, 1, 1, 3: mean 1.5, sd 1, se 0.5.
    rewards = start + np.array([1.0, 1.0, 1.0, 3.0])
    assert selection_score(rewards, start, 2.0) == pytest.approx(0.5)
    assert selection_score(rewards, start, 0.0) == pytest.approx(1.5)
    assert selection_score(start, start, 2.0) == 0.0
    # A snapshot better on average but within the noise ranks below the start.
    noisy = start + np.array([4.0, -3.0, 3.0, -2.0])
    assert selection_score(noisy, start, 2.0) < 0.0 < selection_score(noisy, start, 0.0)
    # No start (a best.json older than the rule): the mean reward.
    assert selection_score(rewards, None, 2.0) == pytest.approx(rewards.mean())


def test_a_snapshot_that_loses_logged_clicks_is_refused_by_hand():
    from ganrl.policy.runner import keeps_logged_clicks, start_estimates

    start = {"snips": 1.0, "dr": 2.0}
    assert keeps_logged_clicks({"snips": 0.98, "dr": 2.0}, start, 0.03)
    assert keeps_logged_clicks({"snips": 0.97, "dr": 1.94}, start, 0.03)
    assert not keeps_logged_clicks({"snips": 0.96, "dr": 2.5}, start, 0.03)
    # Either estimate alone refuses: more SNIPS clicks do not excuse fewer DR ones.
    assert not keeps_logged_clicks({"snips": 1.5, "dr": 1.93}, start, 0.03)
    assert keeps_logged_clicks({"snips": 0.5, "dr": 0.5}, start, 1.0)  # 1: no check
    assert keeps_logged_clicks(None, start, 0.03) and keeps_logged_clicks(start, None, 0.03)
    # An estimate the start lacks (a best.json older than DR) or that is nan is not checked.
    assert keeps_logged_clicks({"snips": 1.0, "dr": 0.1}, {"snips": 1.0}, 0.0)
    assert keeps_logged_clicks({"snips": 1.0, "dr": float("nan")}, start, 0.0)
    assert start_estimates({"start_logged": 1.25}) == {"snips": 1.25}
    assert start_estimates({"start_logged": start}) == start
    assert start_estimates({}) is None


def test_older_run_folders_check_snips_alone_and_bad_estimators_are_refused():
    from ganrl.policy.runner import PolicyConfig

    folders = {"user_model_dir": "a", "test_user_model_dir": "b", "save_dir": "c"}
    assert PolicyConfig(**folders).select_log_estimators == ("snips", "dr")
    assert PolicyConfig.from_dict(folders).select_log_estimators == ("snips",)
    assert PolicyConfig.from_dict(
        {**folders, "select_log_estimators": ["dr"]}
    ).select_log_estimators == ("dr",)
    with pytest.raises(ValueError, match=r"select_log_estimators: 'ips', expected some of"):
        PolicyConfig(**folders, select_log_estimators=("ips",))


def test_make_policy_gives_each_policy_its_own_config(user_model_dir, tmp_path):
    from ganrl.policy.base import POLICIES
    from ganrl.policy.cdqn import CDQNConfig
    from ganrl.policy.ddpg import DDPGConfig
    from ganrl.policy.runner import BUILDERS, PolicyConfig, PolicyRunner

    assert set(BUILDERS) == set(POLICIES)
    runner = PolicyRunner(
        PolicyConfig(
            user_model_dir=user_model_dir,
            test_user_model_dir=user_model_dir,
            save_dir=str(tmp_path),
            k=2,
            horizon=2,
            hidden=8,
            gamma=0.5,
            train_batch_size=4,
            epsilon_steps=7,
            target_update=3,
        ),
        progress=lambda _: None,
    )
    assert runner._policy("cdqn").config == CDQNConfig(
        hidden=8, gamma=0.5, batch_size=4, epsilon_steps=7, target_update=3
    )
    ddpg = runner._policy("ddpg")
    assert (ddpg.gamma, ddpg.batch_size) == (0.5, 4)
    ppo, a2c = runner._policy("ppo"), runner._policy("a2c")
    assert (ppo.gamma, ppo.rollout_steps, a2c.rollout_steps, a2c.n_steps) == (0.5, 10, 5, 5)
    with pytest.raises(ValueError, match=r"^tau=2: expected a number in \[0, 1\]$"):
        DDPGConfig(tau=2)


def test_heartbeat_speaks_by_wall_time_not_by_call():
    from ganrl.policy.runner import Heartbeat

    now, lines = [0.0], []
    beat = Heartbeat(lines.append, every=20.0, clock=lambda: now[0])
    for t in (5.0, 19.9, 20.0, 30.0, 39.9, 40.0, 100.0):
        now[0] = t
        beat(lambda: f"at {now[0]:.1f}")
    # Since the start (0), a line at 20; since 20, a line at 40; since 40, at 100.
    assert lines == ["at 20.0", "at 40.0", "at 100.0"]


def test_protocol_stages_report_progress_and_results(user_model_dir, tmp_path):
    from ganrl.policy.runner import PolicyConfig, PolicyRunner

    config = PolicyConfig(
        user_model_dir=user_model_dir,
        test_user_model_dir=user_model_dir,
        save_dir=str(tmp_path),
        policies=("cdqn", "linucb"),
        k=2,
        horizon=2,
        num_itrs=4,
        batch_size=4,
        train_batch_size=4,
        eval_users=8,
        adapt_itrs=4,
        regret_itrs=4,
        epsilon_steps=4,
        hidden=8,
        select_every=0,
        checkpoint_secs=0,
    )
    lines = []
    results = PolicyRunner(config, progress=lines.append, progress_every=0).run()
    # Every episode of every stage speaks when lines are due at once (progress_every=0).
    for stage in (
        "cdqn (train)",
        "linucb (train)",
        "cdqn (adapt_pretrained)",
        "cdqn (adapt_scratch)",
    ):
        assert f"{stage}: 2 episodes of 4 users" in lines
        assert any(line.startswith(f"{stage}: episode 2/2, reward ") for line in lines)
    # LinUCB's closed-form update has no loss to report; the CDQN's has one.
    assert not any("linucb (train)" in line and "loss" in line for line in lines)
    assert any(line.startswith("cdqn (train): episode 2/2") and ", loss " in line for line in lines)
    assert "regret: linucb episode 2/2" in lines and "regret: random episode 2/2" in lines
    # The results of adaptation and regret are printed, not only written.
    adapt = results["adaptation"]
    assert any(
        line.startswith("adaptation (ctr per episode")
        and f"cdqn scratch {adapt['scratch'][0]:.3f} -> {adapt['scratch'][-1]:.3f}" in line
        for line in lines
    )
    regret = results["regret"]
    assert (
        f"regret after 4 online steps (cumulative, per user): linucb "
        f"{regret['linucb'][-1]:.3f}, gan_greedy {regret['gan_greedy'][-1]:.3f}, "
        f"random {regret['random'][-1]:.3f}"
    ) in lines


def _cdqn_protocol(user_model_dir, save_dir):
    from ganrl.policy.runner import PolicyConfig

    return PolicyConfig(
        user_model_dir=user_model_dir,
        test_user_model_dir=user_model_dir,
        save_dir=str(save_dir),
        policies=("cdqn",),
        k=2,
        horizon=2,
        num_itrs=8,
        batch_size=4,
        train_batch_size=4,
        eval_users=4,
        adapt_itrs=4,
        regret_itrs=0,
        epsilon_steps=8,
        target_update=2,
        select_every=2,
        select_users=4,
        hidden=8,
        checkpoint_secs=0,
    )


def _protocol_figures(save_dir):
    """results.json without timings, and curves.csv."""
    results = json.loads((save_dir / "results.json").read_text())
    for result in results["policies"].values():
        result.pop("train_seconds")
    return results, (save_dir / "curves.csv").read_text().splitlines()


@pytest.mark.slow
def test_killed_cdqn_run_resumes_to_the_uninterrupted_figures(user_model_dir, tmp_path):
    from ganrl.policy.runner import PolicyRunner

    PolicyRunner(_cdqn_protocol(user_model_dir, tmp_path / "full"), progress=lambda _: None).run()

    class Killed(Exception):
        pass

    def run_killed_at(phase, step, clock=None):
        """Killed after logging a curve row, before that episode's checkpoint."""
        runner = PolicyRunner(
            _cdqn_protocol(user_model_dir, tmp_path / "killed"), progress=lines.append
        )
        runner.clock = clock or runner.clock
        log = runner._log

        def log_then_die(row):
            log(row)
            if (row["phase"], row["iteration"]) == (phase, step):
                raise Killed

        runner._log = log_then_die
        with pytest.raises(Killed):
            runner.run()

    lines = []
    # In training (exploration, replay and target updates under way: resumes at episode 2),
    # then in the first episode of adaptation (in the test simulator, before any checkpoint).
    run_killed_at("train", 6)
    # The training seconds before the kill, as its checkpoint keeps them; the resumed
    # segment runs on a stopped clock, so the result's training time is exactly theirs.
    folder = tmp_path / "killed" / "checkpoints" / "cdqn__train"
    before = tf.train.load_variable(
        tf.train.latest_checkpoint(str(folder)), "train_seconds/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert before > 0
    run_killed_at("adapt_pretrained", 2, clock=lambda: 0.0)
    assert "resuming cdqn (train) at episode 2" in lines
    finished = json.loads((tmp_path / "killed" / "policies" / "cdqn.json").read_text())
    assert finished["train_seconds"] == pytest.approx(before)
    PolicyRunner(_cdqn_protocol(user_model_dir, tmp_path / "killed"), progress=lambda _: None).run()
    results, curves = _protocol_figures(tmp_path / "killed")
    full_results, full_curves = _protocol_figures(tmp_path / "full")
    assert len(curves) == len(set(curves)) == 1 + 4 + 2 + 2
    assert curves == full_curves
    assert results == full_results
    # One snapshot is kept, the one best.json names.
    best_folder = tmp_path / "killed" / "checkpoints" / "cdqn__train_best"
    best = json.loads((best_folder / "best.json").read_text())
    assert {name.split(".")[0] for name in os.listdir(best_folder)} == {"best", best["checkpoint"]}


@pytest.mark.slow
def test_a_policy_run_stopped_by_a_signal_saves_and_resumes_as_uninterrupted(
    user_model_dir, tmp_path
):
    from ganrl.policy.runner import PolicyRunner
    from ganrl.train.interrupt import Interrupted

    def protocol(folder):  # no time-based save: the signal's is the only one mid-training
        return dataclasses.replace(_cdqn_protocol(user_model_dir, folder), checkpoint_secs=3600.0)

    PolicyRunner(protocol(tmp_path / "full"), progress=lambda _: None).run()
    runner = PolicyRunner(protocol(tmp_path / "stopped"), progress=lambda _: None)
    log = runner._log

    def log_then_signal(row):
        log(row)
        if (row["phase"], row["iteration"]) == ("train", 6):
            os.kill(os.getpid(), signal.SIGTERM)

    runner._log = log_then_signal
    with pytest.raises(Interrupted, match=r"cdqn \(train\) stopped at episode 3 on a signal"):
        runner.run()
    lines = []
    PolicyRunner(protocol(tmp_path / "stopped"), progress=lines.append).run()
    assert "resuming cdqn (train) at episode 3" in lines
    assert _protocol_figures(tmp_path / "stopped") == _protocol_figures(tmp_path / "full")


@pytest.mark.parametrize("bound", [0.0, 1.0])
def test_untrained_cdqn_with_the_learned_reward_is_gan_greedy(user_model_dir, bound):
    from ganrl.policy.cdqn import CascadingDQN, CDQNConfig
    from ganrl.policy.heuristics import GanGreedy

    model = load_user_model(user_model_dir)
    features = PolicyFeatures.from_user_model(model.reward)
    rng = np.random.default_rng(0)
    obs = Observation(
        tf.constant(rng.integers(-1, model.n_items, (16, 4)), tf.int32),
        tf.constant(np.argsort(rng.random((16, model.n_items)), 1)[:, :8], tf.int32),
        0,
    )
    cdqn = CascadingDQN(
        features,
        3,
        config=CDQNConfig(hidden=8, replay_capacity=8, residual_bound=bound),
        n_candidates=8,
        history_length=4,
        reward_model=model.reward,
    )
    greedy = GanGreedy(features, 3, reward_model=model.reward)
    np.testing.assert_array_equal(cdqn.select(obs).numpy(), greedy.select(obs).numpy())


def test_map_column_chunks_equals_one_pass():
    from ganrl.policy.base import map_column_chunks

    table = tf.reshape(tf.range(2 * 7, dtype=tf.float32), [2, 7])
    out = map_column_chunks(lambda cols: tf.gather(table, cols, axis=1) * 10.0, 7, 3)
    np.testing.assert_array_equal(out.numpy(), table.numpy() * 10.0)


def test_chunked_and_compiled_cascades_pick_the_same_slates(user_model_dir):
    from ganrl.policy.cdqn import CascadingDQN, CDQNConfig

    model = load_user_model(user_model_dir)
    features = PolicyFeatures.from_user_model(model.reward)
    rng = np.random.default_rng(1)
    obs = Observation(
        tf.constant(rng.integers(-1, model.n_items, (6, 4)), tf.int32),
        tf.constant(rng.integers(0, model.n_items, (6, 11)), tf.int32),
        0,
    )
    slates = []
    # One pass; chunks of 4 (the last one padded); each compiled by XLA and as a plain graph.
    for chunk, jit in ((0, True), (4, True), (0, False), (4, False)):
        config = CDQNConfig(hidden=8, replay_capacity=8, candidate_chunk=chunk, jit_compile=jit)
        cdqn = CascadingDQN(
            features,
            3,
            seed=5,
            config=config,
            n_candidates=11,
            history_length=4,
            reward_model=model.reward,
        )
        cdqn.q.out.assign(tf.random.stateless_normal([3, 8], [1, 2]))  # not the greedy start
        slates.append(cdqn.select(obs).numpy())
    for other in slates[1:]:
        np.testing.assert_array_equal(slates[0], other)


def test_best_slate_has_the_highest_expected_click_probability(user_model_dir):
    model = load_user_model(user_model_dir)
    sim = Simulator(model, SimulatorConfig(k=2, n_candidates=6, seed=2, reward="click"))
    obs = sim.reset(64)
    best = sim.expected_slate_reward(obs, sim.best_slate(obs)).numpy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        slate = tf.constant(np.argsort(rng.random((64, 6)), 1)[:, :2], tf.int32)
        assert np.all(best >= sim.expected_slate_reward(obs, slate).numpy() - 1e-6)


def test_auto_reward_is_the_click_where_the_model_learned_no_click(user_model_dir):
    model = load_user_model(user_model_dir)
    assert model.behavior.has_no_click
    assert Simulator(model, SimulatorConfig(reward="auto")).reward_kind == "click"
    assert Simulator(model, SimulatorConfig(reward="learned")).reward_kind == "learned"


def test_load_recommend_and_export_without_ganrl(user_model_dir, tmp_path):
    from ganrl.policy.export import export_policy, export_user_model, load_policy, recommend
    from ganrl.policy.runner import PolicyRunner

    config = tiny_policy_config(user_model_dir, tmp_path / "policy", policies=("cdqn",))
    results = PolicyRunner(config, progress=lambda _: None).run()
    policy = load_policy(str(tmp_path / "policy"))
    # The loaded weights are the tested ones: the same test figures on the same stream.
    again = PolicyRunner(config, progress=lambda _: None).evaluate(policy)
    assert again["cumulative_reward"] == results["policies"]["cdqn"]["cumulative_reward"]
    candidates = [3, 7, 1, 9, 4]
    slate = recommend(policy, history=[2, 5], candidates=candidates)
    assert len(set(slate)) == 2 and set(slate) <= set(candidates)
    export_policy(policy, str(tmp_path / "export_policy"))
    export_user_model(load_user_model(user_model_dir), str(tmp_path / "export_um"))
    # Serve both in a process that cannot import ganrl.
    script = (
        "import sys, json, tensorflow as tf\n"
        "assert 'ganrl' not in sys.modules\n"
        "p = tf.saved_model.load(sys.argv[1]).signatures['recommend']\n"
        "u = tf.saved_model.load(sys.argv[2]).signatures['score']\n"
        "assert tf.saved_model.load(sys.argv[1]).signatures['serving_default'] is not None\n"
        "assert tf.saved_model.load(sys.argv[2]).signatures['serving_default'] is not None\n"
        "h = tf.constant([[5, 2, -1, -1, -1, -1, -1, -1, -1, -1]], tf.int32)\n"
        "s = p(history=h, candidates=tf.constant([[3, 7, 1, 9, 4]], tf.int32))['slate']\n"
        "q = u(history=h, display=tf.constant([[3, 7, 1]], tf.int32))['probabilities']\n"
        "n = int(sys.argv[3])\n"
        "errors = []\n"
        "for bad in ([[3, 7, 1, 9, n]], [[3, 7, 1, 9, -1]]):\n"
        "    try:\n"
        "        p(history=h, candidates=tf.constant(bad, tf.int32))\n"
        "    except tf.errors.InvalidArgumentError as e:\n"
        "        errors.append('candidates: expected item ids 0..' in str(e))\n"
        "for bad, what in (([[3]], 'at least k=2'), ([[3, 3, 7, 1]], 'distinct item ids')):\n"
        "    try:\n"
        "        p(history=h, candidates=tf.constant(bad, tf.int32))\n"
        "    except tf.errors.InvalidArgumentError as e:\n"
        "        errors.append(what in str(e))\n"
        "for bad, what in (([[3, n]], 'item ids -1..'), ([[-1, -1]], 'one shown item')):\n"
        "    try:\n"
        "        u(history=h, display=tf.constant(bad, tf.int32))\n"
        "    except tf.errors.InvalidArgumentError as e:\n"
        "        errors.append(what in str(e))\n"
        "print(json.dumps({'slate': s.numpy()[0].tolist(), 'sum': float(q.numpy().sum()),\n"
        "                  'errors': errors}))\n"
    )
    env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "export_policy"),
            str(tmp_path / "export_um"),
            str(policy.n_items),
        ],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["slate"] == slate
    assert abs(served["sum"] - 1.0) < 1e-4
    # Ids outside the catalogue, too few or repeated candidates and an empty display set
    # fail by the input's name instead of serving made-up slates or probabilities.
    assert served["errors"] == [True] * 6


def test_every_policy_but_random_exports_and_serves_its_own_slates(user_model_dir, tmp_path):
    from ganrl.policy.export import export_policy, load_policy, recommend
    from ganrl.policy.runner import PolicyRunner

    config = tiny_policy_config(user_model_dir, tmp_path / "policy")
    PolicyRunner(config, progress=lambda _: None).run()
    rng = np.random.default_rng(0)
    for name in config.policies:
        policy = load_policy(str(tmp_path / "policy"), name)
        if name == "random":  # its draws are NumPy's: refused by name, not exported wrong
            with pytest.raises(ValueError, match="RandomPolicy's selection does not run as"):
                export_policy(policy, str(tmp_path / name))
            continue
        export_policy(policy, str(tmp_path / name))
        served = tf.saved_model.load(str(tmp_path / name)).signatures["recommend"]
        histories = np.full((3, policy.history_length), -1, np.int32)
        histories[:, 0] = rng.integers(policy.n_items, size=3)
        candidates = rng.permuted(np.tile(np.arange(policy.n_items), (3, 1)), axis=1)[:, :6]
        slates = served(
            history=tf.constant(histories), candidates=tf.constant(candidates, tf.int32)
        )["slate"].numpy()
        np.testing.assert_array_equal(slates, recommend(policy, histories, candidates), name)


def test_comparison_summary_and_table_by_hand():
    from ganrl.reporting import policy_comparison as comparison

    def result(reward, ctr=None):
        out = {
            "cumulative_reward": {"mean": reward, "ci95": 0.0},
            "reward_curve": [reward],
            "train_seconds": 2.0,
        }
        if ctr is not None:
            out["ctr"] = {"mean": ctr, "ci95": 0.0}
        return out

    runs = {
        ("a", 0): {"policies": {"p": result(1.0, 0.2), "q": result(3.0, 0.4)}},
        ("a", 1): {"policies": {"p": result(3.0, 0.4), "q": result(3.0, 0.4)}},
        ("b", 0): {"policies": {"p": result(5.0)}},
    }
    rows = {(r["dataset"], r["policy"]): r for r in comparison.summarise(runs)}
    assert rows[("a", "p")]["reward_mean"] == 2.0 and rows[("a", "p")]["reward_std"] == 1.0
    assert rows[("a", "p")]["ctr_mean"] == pytest.approx(0.3)
    assert rows[("a", "p")]["seeds"] == 2 and np.isnan(rows[("b", "p")]["ctr_mean"])
    table = comparison.markdown(comparison.summarise(runs)).splitlines()
    assert table[0] == (
        "| policy | a cumulative reward | a CTR | a train s | b cumulative "
        "reward | b CTR | b train s |"
    )
    assert table[2] == "| p | 2.000 (1.000) | 0.300 (0.100) | 2.0 | 5.000 (0.000) | - | 2.0 |"
    assert table[3] == "| q | 3.000 (0.000) | 0.400 (0.000) | 2.0 | - | - | - |"


def test_every_policy_is_evaluated_on_the_same_random_stream(user_model_dir, tmp_path):
    from ganrl.policy.runner import PolicyConfig, PolicyRunner

    runner = PolicyRunner(
        PolicyConfig(
            user_model_dir=user_model_dir,
            test_user_model_dir=user_model_dir,
            save_dir=str(tmp_path),
            k=2,
            horizon=3,
            eval_users=50,
            n_candidates=5,
        ),
        progress=lambda _: None,
    )
    greedy = runner._policy("gan_greedy")
    first = runner.evaluate(greedy)
    runner.evaluate(runner._policy("most_popular"))  # consumes the stream in between
    assert runner.evaluate(greedy) == first


def test_rl_agents_run_in_the_protocol(user_model_dir, tmp_path):
    from ganrl.policy.runner import PolicyConfig, PolicyRunner

    config = PolicyConfig(
        user_model_dir=user_model_dir,
        test_user_model_dir=user_model_dir,
        save_dir=str(tmp_path),
        policies=("ppo", "a2c", "ddpg"),
        k=2,
        horizon=2,
        num_itrs=4,
        batch_size=4,
        train_batch_size=4,
        eval_users=8,
        adapt_itrs=0,
        hidden=8,
        checkpoint_secs=0,
    )
    results = PolicyRunner(config, progress=lambda _: None).run()
    for name in config.policies:
        assert math.isfinite(results["policies"][name]["cumulative_reward"]["mean"])
        assert (tmp_path / "checkpoints" / f"{name}__train").is_dir()


def test_regret_has_one_entry_per_step_of_the_horizon_when_everyone_leaves_early():
    # Horizon 4, everyone gone after the slate of step 1: the steps left pay nothing and
    # regret nothing, so the regret curve (like the rewards) keeps one entry per step and
    # the curves of policies whose users leave at different times stay aligned by step.
    from ganrl.policy.runner import run_episodes
    from ganrl.simulator.simulator import StepResult

    class LeavingSim:
        config = SimulatorConfig(k=1, horizon=4)

        def reset(self, users):
            self.t, self.users = 0, users
            return self._obs(np.ones(users, bool))

        def _obs(self, alive):
            return Observation(
                tf.fill([self.users, 1], -1),
                tf.tile(tf.range(3)[None], [self.users, 1]),
                self.t,
                tf.constant(alive),
            )

        def best_slate(self, obs):
            return tf.zeros([self.users, 1], tf.int32)

        def expected_slate_reward(self, obs, slate):
            return 1.0 - tf.cast(slate[:, 0], tf.float32) / 2  # best 1, others 0.5 or 0

        def step(self, obs, slate):
            self.t += 1
            alive = np.full(self.users, self.t < 2)
            reward = tf.where(obs.alive, 0.5, 0.0)
            return StepResult(
                self._obs(alive),
                reward,
                tf.zeros(self.users, tf.bool),
                tf.fill([self.users], -1),
                not alive.any(),
                reward,
            )

    class Second:  # shows candidate 1: regret 0.5 per step while the user is there
        def select(self, obs, explore=False):
            return tf.ones([int(obs.history.shape[0]), 1], tf.int32)

    regret = []
    rewards, _, _ = run_episodes(LeavingSim(), Second(), 3, regret=regret)
    assert rewards.shape == (3, 4)
    np.testing.assert_allclose(regret, [0.5, 0.5, 0.0, 0.0])


def test_expected_rewards_reach_slate_learners_and_sampled_ones_reach_item_credit():
    # With `expected`, a slate learner observes each slate's expected reward; a policy that
    # credits the reward to the clicked item (LinUCB) must observe the sampled one, or it
    # would learn an item's click probability times the whole slate's expected reward.
    from ganrl.policy.runner import run_episodes
    from ganrl.simulator.simulator import StepResult

    class OneStepSim:
        config = SimulatorConfig(k=1, horizon=1)

        def reset(self, users):
            self.users = users
            return Observation(tf.fill([users, 1], -1), tf.tile(tf.range(3)[None], [users, 1]), 0)

        def step(self, obs, slate):
            sampled = tf.fill([self.users], 1.0)
            return StepResult(
                obs,
                sampled,
                tf.ones(self.users, tf.bool),
                tf.zeros(self.users, tf.int32),
                True,
                tf.fill([self.users], 0.25),
            )

    class Recorder:
        learns = True

        def __init__(self, credits_clicked_item):
            self.credits_clicked_item = credits_clicked_item
            self.seen = None

        def select(self, obs, explore=False):
            return tf.zeros([int(obs.history.shape[0]), 1], tf.int32)

        def observe(self, obs, slate, reward, clicked_index, next_obs, done):
            self.seen = np.asarray(reward)

        def train_step(self):
            return {}

    slate_learner, item_credit = Recorder(False), Recorder(True)
    for policy in (slate_learner, item_credit):
        rewards, _, _ = run_episodes(OneStepSim(), policy, 2, learn=True, expected=True)
        np.testing.assert_allclose(rewards, 0.25)  # what validation and results count
    np.testing.assert_allclose(slate_learner.seen, 0.25)
    np.testing.assert_allclose(item_credit.seen, 1.0)
    from ganrl.policy.heuristics import LinUCB

    assert LinUCB.credits_clicked_item


def test_wide_lr_fits_on_the_history_width_it_serves_with():
    # One user, three events clicking items 0, 1, 2 in turn: the third event's history is
    # [1, 0] (most recent first), or [1] alone with history_length=1, so the mean history
    # in its pair features [e_a, mean * e_a, seen_a] differs by the width.
    from ganrl.data.dataset import EventArrays
    from ganrl.policy.heuristics import WideLogisticRegression

    events = EventArrays(
        user_ids=np.array([0]),
        event_offsets=np.array([0, 3]),
        display=np.array([[0, 3], [1, 3], [2, 3]], np.int32),
        display_mask=np.ones((3, 2), bool),
        clicked_pos=np.zeros(3, np.int32),
        n_items=4,
    )
    features = PolicyFeatures(np.array([[1, 0], [0, 1], [1, 1], [1, -1]], np.float32))
    for width, mean in ((10, [0.5, 0.5]), (1, [0.0, 1.0])):
        policy = WideLogisticRegression(features, 1, train_events=events, history_length=width)
        x, y = policy._training_pairs(events)
        np.testing.assert_allclose(x[4], [1, 1, *mean, 0])  # event 2, item 2 = [1, 1]
        np.testing.assert_array_equal(y, [1, 0, 1, 0, 1, 0])
