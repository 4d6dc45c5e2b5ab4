"""benchmarks/bench_session_steps.py's per-step profile, by hand."""

import numpy as np

from benchmarks.bench_session_steps import (
    ClickCalibration,
    calibration_markdown,
    leave_markdown,
    markdown,
    step_profile,
)


def _tiny_loaded(items: int):
    import tensorflow as tf

    from ganrl.data.dataset import ItemFeatures
    from ganrl.user_model import LoadedUserModel
    from ganrl.user_model.model import ModelConfig, UserModel

    tf.keras.utils.set_random_seed(0)
    model = UserModel(
        ItemFeatures(items),
        ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3),
        has_no_click=True,
    )
    return LoadedUserModel(model, model, {}, ItemFeatures(items), run_dir="")


def test_step_profile_counts_only_the_users_still_there():
    # Three users, three steps: sessions of 3, 1 and 2 slates.
    clicks = np.array([[1, 0, 1], [1, 0, 0], [0, 1, 0]], bool)
    ctr, present = step_profile(clicks, np.array([3, 1, 2]))
    np.testing.assert_allclose(present, [1.0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(ctr, [2 / 3, 1 / 2, 1.0])


def test_step_profile_is_nan_where_nobody_is_left():
    ctr, present = step_profile(np.zeros((2, 3), bool), np.array([1, 2]))
    assert np.isnan(ctr[2]) and present[2] == 0.0
    np.testing.assert_allclose(ctr[:2], [0.0, 0.0])


def test_markdown_has_a_row_per_world_and_the_mean_session():
    rows = {"true": step_profile(np.ones((2, 2), bool), np.array([2, 1]))}
    table = markdown("gan_greedy", rows).splitlines()
    assert table[0].startswith("| gan_greedy | step 1 | step 2 |")
    assert table[2] == "| true | 1.00 (1.00) | 1.00 (0.50) | 1.50 |"


def test_calibration_markdown_stops_where_nobody_is_left():
    rows = {
        "true": np.array([[0.9, 0.5], [0.8, 0.4], [np.nan, np.nan]]),
        "user_model_PW__1": np.array([[0.95, 0.55], [0.9, 0.45], [np.nan, np.nan]]),
    }
    table = calibration_markdown("gan_greedy", rows).splitlines()
    assert table[0] == "| gan_greedy: P(click) | true | user_model_PW__1 |"
    assert table[2] == "| step 1 | 0.90 / 0.50 | 0.95 / 0.55 |"
    assert len(table) == 4


def test_click_calibration_reads_the_truth_and_each_model_along_the_true_sessions():
    from ganrl.data.satiation import SatiationConfig, SatiationWorld
    from ganrl.sim2real import harness
    from ganrl.sim2real.true_env import SatiationEnvironment

    config = SatiationConfig(items=6, topics=2, feature_dim=2, max_display=2, min_display=1)
    v = np.array([[1.0, 0], [0, 1], [1, 1], [0.5, 0], [0, 0.5], [-1, 0]])
    env = SatiationEnvironment(SatiationWorld(config, v, np.zeros(6), np.arange(6) % 2))
    calibration = ClickCalibration(env, {"pw": _tiny_loaded(6)}, horizon=3, seed=0)
    seen = []

    def record(t, history, events, slate):
        seen.append(env.click_probabilities(slate)[:, :-1].sum(axis=1)[env.active].mean())
        calibration(t, history, events, slate)

    harness.evaluate_true(env, lambda h, c, e: np.tile([0, 1], (len(h), 1)), 40, 3, 1, record)
    rows = calibration.rows
    # The truth's column of the policy's slate is the true click probability of its slate.
    np.testing.assert_allclose(rows["true"][: len(seen), 0], seen)
    for name in ("true", "pw"):
        there = ~np.isnan(rows[name][:, 0])
        assert there[0] and np.all((rows[name][there] > 0) & (rows[name][there] < 1))


def test_members_spread_is_zero_for_identical_members_and_absent_for_one():
    from ganrl.data.satiation import SatiationConfig, SatiationWorld
    from ganrl.sim2real.true_env import SatiationEnvironment

    config = SatiationConfig(items=6, topics=2, feature_dim=2, max_display=2, min_display=1)
    v = np.array([[1.0, 0], [0, 1], [1, 1], [0.5, 0], [0, 0.5], [-1, 0]])
    env = SatiationEnvironment(SatiationWorld(config, v, np.zeros(6), np.arange(6) % 2))
    loaded = _tiny_loaded(6)
    env.reset(10, 0)
    twins = ClickCalibration(env, {"a": loaded, "b": loaded}, 2, 0, members=("a", "b"))
    twins(0, np.full((10, 2), -1, np.int32), None, np.tile([0, 1], (10, 1)).astype(np.int32))
    np.testing.assert_allclose(twins.rows[ClickCalibration.SPREAD][0], [0.0, 0.0], atol=1e-7)
    alone = ClickCalibration(env, {"a": loaded}, 2, 0, members=("a",))
    assert ClickCalibration.SPREAD not in alone.rows


def test_leave_rows_weight_the_leave_model_by_the_model_and_by_the_truth():
    import tensorflow as tf

    from ganrl.data.satiation import SatiationConfig, SatiationWorld
    from ganrl.sim2real import harness
    from ganrl.sim2real.true_env import SatiationEnvironment
    from ganrl.user_model.leave import FEATURES, LeaveModel

    config = SatiationConfig(items=6, topics=2, feature_dim=2, max_display=2, min_display=1)
    v = np.array([[1.0, 0], [0, 1], [1, 1], [0.5, 0], [0, 0.5], [-1, 0]])
    env = SatiationEnvironment(SatiationWorld(config, v, np.zeros(6), np.arange(6) % 2))
    loaded = _tiny_loaded(6)
    # A leave model that reads the click alone: logit(P(leave)) = -2 * clicked + 0.5, so
    # P(leave) = sigmoid(0.5) without a click and sigmoid(-1.5) with one.
    clicked = FEATURES.index("clicked")
    weights = tuple(-2.0 if i == clicked else 0.0 for i in range(len(FEATURES)))
    leave = LeaveModel((0.0,) * len(FEATURES), (1.0,) * len(FEATURES), weights, 0.5)
    calibration = ClickCalibration(
        env, {"pw": loaded, "old": loaded}, 3, 0, leave_models={"pw": leave, "old": None}
    )
    expected = {"true": [], "own": [], "truth": []}
    l0, l1 = 1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(1.5))

    def record(t, history, events, slate):
        there = env.active
        expected["true"].append(env.leave_probabilities(slate)[there].mean())
        p_true = env.click_probabilities(slate)[:, :-1].sum(axis=1)
        state = loaded.behavior_choice.replay_events(tf.constant(history), None)
        logits = loaded.behavior_choice.logits(state, tf.constant(slate))
        p_own = 1.0 - tf.nn.softmax(logits)[:, -1].numpy()
        for key, p in (("own", p_own), ("truth", p_true)):
            expected[key].append((p * l1 + (1 - p) * l0)[there].mean())
        calibration(t, history, events, slate)

    harness.evaluate_true(env, lambda h, c, e: np.tile([0, 1], (len(h), 1)), 50, 3, 1, record)
    rows = calibration.leave_rows
    # Only models with a leave model get a row; the truth's columns are the world's rule.
    assert set(rows) == {"true", "pw"}
    n = len(expected["true"])
    np.testing.assert_allclose(rows["true"][:n, 0], expected["true"])
    np.testing.assert_allclose(rows["pw"][:n, 0], expected["own"], rtol=1e-5)
    np.testing.assert_allclose(rows["pw"][:n, 1], expected["truth"], rtol=1e-5)
    table = leave_markdown("gan_greedy", rows).splitlines()
    assert table[0] == "| gan_greedy: P(leave) | true | pw |"
    assert table[2].startswith(f"| step 1 | {rows['true'][0, 0]:.3f} | ")
    assert len(table) == 2 + n
    # Without leave models there is no leave table.
    assert ClickCalibration(env, {"pw": loaded}, 3, 0).leave_rows == {}
