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
