"""The independent topic world of `benchmarks/topic_world.py`."""

import json

import numpy as np

from benchmarks import topic_world
from ganrl.data.released import read_released


def test_topic_world_writes_a_released_log_and_its_limits(tmp_path):
    limits = topic_world.generate(str(tmp_path), "topics", 0, 80, 60, 4, 200)
    converted = read_released(str(tmp_path / "topics.txt"), "topics", 0)
    stats = converted.stats
    assert stats["users"] == 80 and stats["items"] <= 60
    assert 3 <= stats["display_size"]["min"] and stats["display_size"]["max"] <= 12
    assert stats["no_clicks"] > 0 and stats["clicks"] > 0
    assert json.loads((tmp_path / "topics-limits.json").read_text()) == limits
    assert limits["test_clicks"] > 0
    for key in ("bayes_prec1", "oracle_prec1", "quality_recency_prec1"):
        assert 0.0 <= limits[key] <= 1.0
    # Knowing each user's taste ranks better than knowing none of it.
    assert limits["oracle_prec1"] > limits["quality_recency_prec1"]
    # The same seed writes the same log.
    again = tmp_path / "again"
    assert topic_world.generate(str(again), "topics", 0, 80, 60, 4, 200) == limits
    assert (again / "topics.txt").read_bytes() == (tmp_path / "topics.txt").read_bytes()


def test_utilities_by_hand():
    quality = np.array([1.0, -1.0, 0.0])
    topic = np.array([0, 1, 1])
    taste = np.array([[0.5, 0.5]])
    shown = np.array([[0, 2]])
    last = np.array([1])
    expected = [0.6 * 1.0 + 1.5 * np.log(1.02), 0.0 + 1.5 * np.log(1.02) + 1.2]
    np.testing.assert_allclose(
        topic_world.utilities(quality, topic, taste, last, shown)[0], expected
    )
