"""The independent world of discrete user types of `benchmarks/types_world.py`."""

import json

import numpy as np

from benchmarks import types_world
from ganrl.data.released import read_released


def test_types_world_writes_a_released_log_and_its_limits(tmp_path):
    limits = types_world.generate(str(tmp_path), "types", 0, 120, 80, 8, 5)
    stats = read_released(str(tmp_path / "types.txt"), "types", 0).stats
    assert stats["users"] == 120 and stats["items"] <= 80
    assert 4 <= stats["display_size"]["min"] and stats["display_size"]["max"] <= 15
    assert stats["no_clicks"] > 0 and stats["clicks"] > 0
    assert json.loads((tmp_path / "types-limits.json").read_text()) == limits
    assert limits["test_clicks"] > 0
    for key in ("bayes", "oracle", "quality", "recent", "next_group"):
        assert 0.0 <= limits[f"{key}_prec1"] <= 1.0
    # The same seed writes the same log.
    again = tmp_path / "again"
    assert types_world.generate(str(again), "types", 0, 120, 80, 8, 5) == limits
    assert (again / "types.txt").read_bytes() == (tmp_path / "types.txt").read_bytes()


def test_with_one_type_the_posterior_is_the_oracle(tmp_path):
    # Nothing is left to infer: the posterior predictive ranks as the utilities do.
    limits = types_world.generate(str(tmp_path), "types", 3, 150, 60, 6, 1)
    assert limits["bayes_prec1"] == limits["oracle_prec1"]


def test_item_parts_by_hand():
    quality = np.array([0.5, -1.0, 2.0, 0.0])
    group = np.array([0, 1, 1, 2])
    recent = np.array([[2, -1, -1, -1, -1]])
    shown = np.array([[0, 1, 2, 3]])
    parts = types_world.item_parts(quality, group, recent, np.array([1]), shown)
    np.testing.assert_allclose(parts[0], [0.5, -1.0 + 2.0, 2.0 - 2.5 + 2.0, 0.0])
    # No click yet: no group pulls and nothing is avoided.
    none = types_world.item_parts(quality, group, np.full((1, 5), -1), np.array([-1]), shown)
    np.testing.assert_allclose(none[0], quality)


def test_true_environment_is_the_generators_world():
    env = types_world.TypesEnvironment(seed=4, items=60, groups=6, types=5)
    group, quality, taste = types_world.draw_world(np.random.default_rng(4), 60, 6, 5)
    np.testing.assert_array_equal(env.group, group)
    env.reset(users=3, seed=0)
    # A click moves the user on: the item is avoided, the group after its own pulls.
    slate = np.array([[0, 1, 2, 3, 4]] * 3)
    first = env.utilities()
    np.testing.assert_allclose(first, quality[None, :] + taste[env.user_type])
    env.step(slate)
    clicked = env.recent[:, 0]
    expected = (
        types_world.item_parts(
            quality, group, env.recent, env.next_group, np.tile(np.arange(60), (3, 1))
        )
        + taste[env.user_type]
    )
    np.testing.assert_allclose(env.utilities(), expected)
    for user in np.nonzero(clicked >= 0)[0]:
        assert env.next_group[user] == (group[clicked[user]] + 1) % 6


def test_true_users_leave_as_the_logs_users_did():
    env = types_world.TypesEnvironment(seed=0, items=60, groups=6, types=5)
    env.reset(users=2, seed=0)
    slate = np.array([[0, 1, 2, 3, 4]] * 2)
    p_end, fewest, most = types_world.SESSION
    leave = []
    for _ in range(most):
        leave.append(env.leave_probabilities(slate)[0])
        env._after(slate, np.full(2, 5), np.ones(2))  # nobody clicks, nobody leaves
    assert leave[: fewest - 1] == [0.0] * (fewest - 1)
    assert leave[fewest - 1] == 1.0 - (1.0 - p_end) ** fewest
    assert set(leave[fewest : most - 1]) == {p_end} and leave[most - 1] == 1.0
