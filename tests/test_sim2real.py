"""The ground-truth environments, the satiation world's logs and the sim-to-real harness."""

import csv
import dataclasses
import json
import math
import os
import shutil

import numpy as np
import pytest

from ganrl.data.dataset import load_run_data
from ganrl.data.released import read_released
from ganrl.data.safe_io import DataError
from ganrl.data.satiation import SatiationConfig, SatiationWorld, make_satiation
from ganrl.data.synthetic import SyntheticConfig, world_settings
from ganrl.sim2real import harness
from ganrl.sim2real.true_env import SatiationEnvironment, SyntheticEnvironment


def _hand_made_env():
    # Items: v0 = (1, 0), v1 = (0, 1), v2 = (-1, 0); b = (0, 0.5, 0); no click utility 0.5.
    config = SyntheticConfig(
        feature_dim=2,
        items=3,
        max_display=3,
        min_display=1,
        **world_settings("lag_uniform_noclick"),
    )
    v = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    return SyntheticEnvironment(config, v, np.array([0.0, 0.5, 0.0]), reward="utility")


def test_true_clicks_follow_the_true_softmax_on_a_hand_made_case():
    env = _hand_made_env()
    users = 40000
    env.reset(users, seed=0)
    env.theta[:] = [1.0, 0.0]  # every user the same taste; no history yet
    # u = (1, 0.5, -1), no click 0.5: p = (e, e^.5, e^-1, e^.5) / (e + 2 e^.5 + e^-1).
    z = math.e + 2 * math.exp(0.5) + math.exp(-1)
    expected = np.array([math.e, math.exp(0.5), math.exp(-1), math.exp(0.5)]) / z
    slate = np.tile([0, 1, 2], (users, 1))
    np.testing.assert_allclose(env.click_probabilities(slate)[0], expected, rtol=1e-12)
    out = env.step(slate)
    freq = np.bincount(np.where(out.clicked_index >= 0, out.clicked_index, 3), minlength=4)
    se = np.sqrt(expected * (1 - expected) / users)
    assert np.all(np.abs(freq / users - expected) < 4 * se)
    # Reward: the clicked item's true utility, 0 without a click.
    clicked = out.clicked_index >= 0
    np.testing.assert_allclose(
        out.reward[clicked], np.array([1.0, 0.5, -1.0])[out.clicked_index[clicked]]
    )
    assert np.all(out.reward[~clicked] == 0) and np.all(out.active)


def test_common_random_numbers_same_users_same_noise():
    env = _hand_made_env()
    slate = np.tile([0, 1, 2], (50, 1))
    env.reset(50, seed=3)
    first = env.step(slate).clicked_index
    env.reset(50, seed=3)
    np.testing.assert_array_equal(env.step(slate).clicked_index, first)


def test_mean_history_averages_every_earlier_click_past_the_logs_length():
    """`mean` worlds: h is the mean of v over ALL earlier clicks, also in sessions longer
    than the logs' (whose `history_depth` is events_per_user - 1)."""
    config = SyntheticConfig(
        feature_dim=2,
        items=4,
        max_display=2,
        min_display=1,
        events_per_user=3,  # history_depth 2
        **world_settings("mean_uniform_always"),
    )
    v = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    env = SyntheticEnvironment(config, v, np.zeros(4))
    env.reset(2, seed=0)
    for item in (0, 1, 2, 3):  # one-item slates of an always-click world: every one clicked
        env.step(np.full((2, 1), item))
    h = env.utilities() - env.theta @ v.T
    np.testing.assert_allclose(h, np.tile(v @ v.mean(axis=0), (2, 1)), rtol=1e-12)


def _constant_leave_world(leave: float) -> SatiationWorld:
    config = SatiationConfig(
        items=6,
        topics=2,
        feature_dim=2,
        max_display=2,
        min_display=1,
        leave_base=leave,
        leave_max=leave,
    )
    v = np.array([[1.0, 0], [0, 1], [1, 1], [0.5, 0], [0, 0.5], [-1, 0]])
    return SatiationWorld(config, v, np.zeros(6), np.array([0, 1, 0, 1, 0, 1]))


def test_leaving_ends_episodes_at_the_known_rate():
    env = SatiationEnvironment(_constant_leave_world(0.3))
    users, horizon = 20000, 5
    result = harness.evaluate_true(
        env, lambda h, c, e: np.tile([0, 1], (len(h), 1)), users, horizon, seed=1
    )
    # Each slate is the last with probability 0.3: E[steps] = sum_{t<5} 0.7^t = 2.7731.
    expected = sum(0.7**t for t in range(horizon))
    se = result["steps"].std() / math.sqrt(users)
    assert abs(result["steps"].mean() - expected) < 4 * se
    assert np.all(result["steps"] >= 1)
    # Users who left click no more: no one gets more clicks than slates seen.
    assert np.all(result["reward"] <= result["steps"])
    # The per-step clicks add up to the reward (one per click) and stop with the session.
    clicks = result["clicks"]
    assert clicks.shape == (users, horizon) and clicks.any()
    np.testing.assert_array_equal(clicks.sum(axis=1), result["reward"])
    assert not np.any(clicks & (np.arange(horizon)[None, :] >= result["steps"][:, None]))


def test_leave_probability_rises_when_the_best_utility_falls():
    world = SatiationWorld(
        SatiationConfig(leave_base=0.1, leave_max=0.5, leave_threshold=2.0, leave_scale=1.0),
        *([None] * 3),
    )
    # At the threshold the sigmoid is 1/2: 0.1 + 0.4 / 2 = 0.3.
    p = world.leave_probability(np.array([10.0, 2.0, -10.0]))
    np.testing.assert_allclose(p, [0.1, 0.3, 0.5], atol=1e-3)


def test_true_leave_probabilities_are_the_ones_each_step_draws_against():
    import copy

    config = SatiationConfig(
        items=6, topics=2, feature_dim=2, max_display=2, min_display=1, leave_base=0.05
    )
    v = np.array([[1.0, 0], [0, 1], [1, 1], [0.5, 0], [0, 0.5], [-1, 0]])
    env = SatiationEnvironment(SatiationWorld(config, v, np.zeros(6), np.arange(6) % 2))
    env.reset(400, seed=2)
    slate = np.tile([2, 0], (400, 1))
    for _ in range(3):
        p = env.leave_probabilities(slate)
        # The world's rule on the best true utility of the slate before the step moves it.
        np.testing.assert_allclose(p, env.world.leave_probability(env.utilities(slate).max(1)))
        stream = copy.deepcopy(env.rng)
        stream.gumbel(size=(400, 3))
        expected_stay = env.active & (stream.random(400) >= p)
        np.testing.assert_array_equal(env.step(slate).active, expected_stay)
    # A world where nobody leaves says so.
    synthetic = _hand_made_env()
    synthetic.reset(4, seed=0)
    np.testing.assert_array_equal(synthetic.leave_probabilities(np.tile([0, 1], (4, 1))), 0.0)


def test_lookahead_oracle_with_fewer_topics_than_the_slate_has_items():
    """Two topics, k = 3: no slate has at most one item per topic; the lookahead picks
    among the slates that exist (it indexed past the catalogue)."""
    env = SatiationEnvironment(_constant_leave_world(0.1))
    env.reset(4, seed=0)
    slate = harness.lookahead_oracle(env, 3)(None, np.arange(6), None)
    assert slate.shape == (4, 3)
    assert all(len(set(row)) == 3 for row in slate.tolist())


def test_satiation_tires_shown_and_clicked_topics():
    world = _constant_leave_world(0.0)
    tired = world.update_satiation(np.array([[1.0, 0.0]]), np.array([[0, 2]]), np.array([1]))
    # Topic 0: 0.9 * 1 + 2 shown x 0.3 + the click (item 2, topic 0) 1.0 = 2.5; topic 1: 0.
    np.testing.assert_allclose(tired, [[2.5, 0.0]])


def test_clickbait_disappoints_every_item_and_leaves_the_default_world_as_it_was():
    plain = SatiationConfig(items=40, topics=4)
    bait = dataclasses.replace(plain, clickbait_share=0.5, clickbait_bias=1.5, clickbait_cost=2.0)
    # Without clickbait the world, its random stream and its truth file are as before.
    assert "clickbait_share" not in json.loads(plain.to_json())
    assert SatiationConfig.from_json(bait.to_json()) == bait
    a = SatiationWorld.draw(plain, np.random.default_rng(0))
    b = SatiationWorld.draw(bait, np.random.default_rng(0))
    np.testing.assert_array_equal(a.v, b.v)
    assert not a.clickbait.any() and 0 < b.clickbait.sum() < 40
    np.testing.assert_allclose(b.b - a.b, 1.5 * b.clickbait)
    assert a.initial_state(3).shape == (3, 4) and b.initial_state(3).shape == (3, 5)
    # A click on clickbait adds its cost to D (the last column), which lowers every item.
    bait_item, plain_item = np.flatnonzero(b.clickbait)[0], np.flatnonzero(~b.clickbait)[0]
    state = b.initial_state(2)
    shown = np.array([[bait_item, plain_item]] * 2)
    after = b.update_satiation(state, shown, np.array([0, 1]))
    assert after[0, -1] == pytest.approx(2.0) and after[1, -1] == 0.0
    taste = np.zeros((2, plain.feature_dim))
    items = np.arange(40)[None].repeat(2, 0)
    shift = b.utilities(taste, after, items) - b.utilities(taste, after * [[1] * 4 + [0]], items)
    np.testing.assert_allclose(shift, [[-2.0] * 40, [0.0] * 40])
    # The expected state of a one-hot click is the state after that click.
    probability = np.array([[0.0, 1.0], [0.25, 0.25]])
    expected = b.expected_satiation(state, shown, probability)
    np.testing.assert_allclose(expected[0], b.update_satiation(state, shown, np.array([1, 2]))[0])
    assert expected[1, -1] == pytest.approx(0.25 * 2.0)
    # The oracle that never shows clickbait shows none, and the top k of the rest.
    env = SatiationEnvironment(b)
    oracle, shown = harness.no_clickbait_oracle(env, 3), []

    def recording(history, candidates, events=None):
        shown.append(oracle(history, candidates, events))
        u = np.where(b.clickbait[None], -np.inf, env.utilities())
        np.testing.assert_array_equal(np.sort(shown[-1], 1), np.sort(np.argsort(-u, 1)[:, :3], 1))
        return shown[-1]

    harness.evaluate_true(env, recording, 20, 4, 0)
    assert shown and not b.clickbait[np.concatenate(shown)].any()


def test_targeted_logging_shows_users_what_suits_their_taste(tmp_path):
    plain = SatiationConfig(users=300, items=60, topics=4, events_per_user=4, logging_popular=1.0)
    targeted = dataclasses.replace(plain, logging_targeting=0.5)
    # Without targeting the truth file is as before; with it the setting round-trips.
    assert "logging_targeting" not in json.loads(plain.to_json())
    assert SatiationConfig.from_json(targeted.to_json()) == targeted
    with pytest.raises(DataError, match="logging_targeting"):
        dataclasses.replace(plain, logging_targeting=-1.0).validate()

    def shown_taste(config, name):
        converted, truth = make_satiation(str(tmp_path), name, 0, config)
        ev = converted.events
        user = np.repeat(np.asarray(ev.user_ids), ev.events_per_user)
        fit = np.einsum("ed,ekd->ek", truth["user_taste"][user], truth["item_vectors"][ev.display])
        return fit[ev.display_mask].mean()

    # Same items and users (the same seed): the targeted sets hold items closer to the taste.
    assert shown_taste(targeted, "targeted") > shown_taste(plain, "plain") + 1.0


def test_satiation_logs_load_through_the_released_reader(tmp_path):
    config = SatiationConfig(users=40, items=30, topics=3, events_per_user=6)
    converted, truth = make_satiation(str(tmp_path), "sat", 0, config)
    again = read_released(str(tmp_path / "sat.txt"), "sat", 0)
    events = again.events
    assert events.n_users == 40 and converted.dataset.n_items == 30
    # Sessions: one display set per slate seen, ended by leaving or the longest session.
    lengths = dict(zip(np.asarray(events.user_ids).tolist(), events.events_per_user.tolist()))
    assert [lengths[u] for u in range(40)] == truth["session_length"].tolist()
    assert truth["session_length"].max() <= 6 and truth["session_length"].min() >= 1
    assert (events.clicked_pos < 0).any() and (events.clicked_pos >= 0).any()  # no-clicks too


@pytest.mark.slow
def test_harness_end_to_end_on_a_tiny_world(tmp_path):
    config = harness.HarnessConfig(
        world="satiation",
        seed=0,
        save_dir=str(tmp_path),
        users=60,
        user_model_args=("--num_itrs=3", "--eval_every=3", "--dims=8", "--rnn_hidden_dim=4"),
        policies=("gan_greedy", "random"),
        num_itrs=10,
        sim_eval_users=20,
        true_users=200,
    )
    out = harness.run(config, log=lambda _: None)
    with open(os.path.join(config.run_dir, "table.csv")) as f:
        reader = csv.DictReader(f)
        rows = {r["policy"]: r for r in reader}
    assert tuple(reader.fieldnames) == harness.TABLE_FIELDS
    assert set(rows) == {
        "gan_greedy",
        "random",
        "oracle_myopic",
        "oracle_lookahead",
        "oracle_static",
    }
    assert float(rows["oracle_myopic"]["true_reward"]) >= float(rows["random"]["true_reward"])
    assert float(rows["gan_greedy"]["gap_to_gan_greedy"]) == 0.0
    assert rows["oracle_myopic"]["sim_reward"] == "nan"  # no simulator figure for oracles
    for name in ("table.md", "sim_vs_true.png", "results.json"):
        assert os.path.getsize(os.path.join(config.run_dir, name)) > 0
    assert len(out["rows"]) == 5
    # A rerun reuses every finished stage: the user models are not retrained.
    marker = os.path.join(config.run_dir, "user_model_LSTM__0", "results.json")
    before = os.stat(marker).st_mtime_ns
    again = harness.run(dataclasses.replace(config), log=lambda _: None)
    assert os.stat(marker).st_mtime_ns == before
    assert [r["true_reward"] for r in again["rows"]] == [r["true_reward"] for r in out["rows"]]
    # The ensemble variant reuses the logs and both user models, trains two more members and
    # writes its own policies and table beside the plain one.
    pessimistic = dataclasses.replace(config, ensemble=2, penalty=0.5)
    harness.run(pessimistic, log=lambda _: None)
    assert os.stat(marker).st_mtime_ns == before
    assert os.path.isdir(os.path.join(config.run_dir, "user_model_LSTM__3"))
    assert pessimistic.output_dir != config.run_dir
    with open(os.path.join(pessimistic.output_dir, "table.csv")) as f:
        rows = {r["policy"]: r for r in csv.DictReader(f)}
    with open(os.path.join(pessimistic.policy_dir, "results.json")) as f:
        assert "user_model_LSTM__3" in json.load(f)["snapshot_selection"]
    for name in ("gan_greedy", "random"):
        assert math.isfinite(float(rows[name]["off_policy_dr"]))
    # The reward-only variant reuses the same two members and trains in the LSTM alone.
    averaged = dataclasses.replace(config, reward_ensemble=2, policies=("gan_greedy",))
    harness.run(averaged, log=lambda _: None)
    with open(os.path.join(averaged.policy_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["ensemble_dirs"] == [] and [os.path.basename(d) for d in saved["reward_dirs"]] == [
        "user_model_LSTM__2",
        "user_model_LSTM__3",
    ]
    # Members fitted to all training users are not reused as members fitted to a share.
    with pytest.raises(ValueError, match="train_share=1 of the training users, expected 0.5"):
        harness.run(dataclasses.replace(averaged, member_share=0.5), log=lambda _: None)
    # In a folder of its own (the logs and the two user models copied), a member is fitted
    # to a share of the training users; its leave model and the logs' policies see that share.
    shared = dataclasses.replace(
        averaged, save_dir=str(tmp_path / "shared"), reward_ensemble=1, member_share=0.5
    )
    for name in ("data", "user_model_LSTM__0", "user_model_PW__1"):
        shutil.copytree(os.path.join(config.run_dir, name), os.path.join(shared.run_dir, name))
    harness.run(shared, log=lambda _: None)
    member = os.path.join(shared.run_dir, "user_model_LSTM__2")
    with open(os.path.join(member, "config.json")) as f:
        member_config = json.load(f)
    assert member_config["train_share"] == 0.5
    full = load_run_data({**member_config, "train_share": 1.0}).splits["train"].n_users
    assert load_run_data(member_config).splits["train"].n_users == round(0.5 * full)
    with open(os.path.join(member, "leave_model.json")) as f:
        leave = json.load(f)
    # Every event of the share's users is labelled but a censored user's last.
    info = leave["info"]
    assert info["train_events"] + info["censored_users"] == int(
        load_run_data(member_config).splits["train"].event_offsets[-1]
    )


def test_off_policy_spearman_ranks_the_policies_with_an_estimate_by_hand():
    nan = float("nan")
    rows = [
        {"off_policy_dr": 1.0, "true_reward": 10.0},
        {"off_policy_dr": 3.0, "true_reward": 30.0},
        {"off_policy_dr": 2.0, "true_reward": 20.0},
        {"off_policy_dr": nan, "true_reward": 0.0},  # an oracle: no estimate, left out
    ]
    assert harness.off_policy_spearman(rows) == pytest.approx(1.0)
    rows[1]["off_policy_dr"] = 0.0  # now ranked last while truly best
    assert harness.off_policy_spearman(rows) == pytest.approx(-0.5)


def test_cdqn_settings_name_their_own_policy_folder(tmp_path):
    base = harness.HarnessConfig(save_dir=str(tmp_path))
    assert base.policy_dir == str(tmp_path / "lag_popular_always__0" / "policy")
    old = dataclasses.replace(base, cdqn=(("cdqn_residual_bound", 0.0),))
    assert old.policy_dir.endswith("policy__cdqn_residual_bound0")
    both = dataclasses.replace(base, ensemble=3, penalty=1.0, cdqn=(("cdqn_n_step", 3),))
    assert both.variant == "ensemble3_penalty1__cdqn_n_step3"
    snips = dataclasses.replace(base, cdqn=(("select_log_estimators", ("snips",)),))
    assert snips.variant == "select_log_estimatorssnips"
    none = dataclasses.replace(base, cdqn=(("select_log_estimators", ()),))
    assert none.variant == "select_log_estimatorsnone"
    explore = dataclasses.replace(base, cdqn=(("cdqn_explore", "bound"),))
    assert explore.variant == "cdqn_explorebound"
    expected = dataclasses.replace(
        base, cdqn=(("expected_reward", True), ("select_users", 1024), ("gamma", 1.0))
    )
    assert expected.variant == "expected_reward1__select_users1024__gamma1"
    with pytest.raises(ValueError, match="gamma=2.0: expected a number in"):
        dataclasses.replace(base, cdqn=(("gamma", 2.0),))
    assert dataclasses.replace(base, reward_ensemble=4).variant == "reward4"
    halves = dataclasses.replace(base, ensemble=2, member_share=0.5)
    assert halves.variant == "ensemble2_penalty0__share0.5"
    with pytest.raises(ValueError, match=r"member_share=0.0: expected a number in \(0, 1\]"):
        dataclasses.replace(base, member_share=0.0)
    with pytest.raises(ValueError, match="ensemble=2 and reward_ensemble=2: expected one"):
        dataclasses.replace(base, ensemble=2, reward_ensemble=2)


def test_recommenders_see_each_users_recent_slates_and_clicks():
    """evaluate_true hands every recommender the slates it showed and what each user did,
    most recent first, in `Observation.events`' form."""
    env = SatiationEnvironment(_constant_leave_world(0.0))
    seen, shown = [], []

    def recommend(history, candidates, events):
        seen.append((history.copy(), None if events is None else events.copy()))
        slate = np.stack([np.random.default_rng(len(seen)).permutation(6)[:2]] * len(history))
        shown.append(slate)
        return slate

    harness.evaluate_true(env, recommend, 50, 3, seed=2)
    assert seen[0][1] is None
    for t in (1, 2):
        history, events = seen[t]
        assert events.shape == (50, 3, 3)
        np.testing.assert_array_equal(events[:, 0, 1:], shown[t - 1])  # the last slate first
        np.testing.assert_array_equal(events[:, t:], -1)  # no events before the first slate
        clicked = events[:, 0, 0]
        assert set(np.unique(clicked)) <= set(shown[t - 1][0]) | {-1}
        # A click joins the history; a no-click leaves it.
        np.testing.assert_array_equal(history[clicked >= 0, 0], clicked[clicked >= 0])
    assert (seen[2][1][:, :, 0] == -1).any() and (seen[2][1][:, :, 0] >= 0).any()
