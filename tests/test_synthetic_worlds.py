"""The synthetic generator's worlds: history effects, display draws, always-click logs and
what models are given (item ids only unless asked)."""

import numpy as np
import pytest

from ganrl.data.safe_io import DataError
from ganrl.data.synthetic import (
    DEFAULT_WORLD,
    SyntheticConfig,
    draw_displays,
    earlier_clicks,
    history_effect,
    make_synthetic,
    world_names,
    world_settings,
)


def test_earlier_clicks_by_hand():
    # User 0: clicks 5, none, 7, 3; user 1: 9, none. Most recent first, two deep.
    clicked = np.array([5, -1, 7, 3, 9, -1])
    earlier = earlier_clicks(clicked, np.array([0, 4, 6]), depth=2)
    np.testing.assert_array_equal(earlier, [[-1, -1], [5, -1], [5, -1], [7, 5], [-1, -1], [9, -1]])


def test_history_effect_by_hand():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    earlier = np.array([[2, 0, 1], [1, -1, -1], [-1, -1, -1]])  # latest first
    lag = SyntheticConfig(history="lag", history_weight=2.0, history_lags=3, history_decay=0.5)
    # Weights 2, 1, 0.5: 2 * (2, 2) + 1 * (1, 0) + 0.5 * (0, 1) = (5, 4.5); then 2 * (0, 1).
    np.testing.assert_allclose(history_effect(v, earlier, lag), [[5, 4.5], [0, 2], [0, 0]])
    mean = SyntheticConfig(history="mean", history_weight=2.0)
    # 2 * mean of (2, 2), (1, 0), (0, 1) = 2 * (1, 1); one click: 2 * (0, 1).
    np.testing.assert_allclose(history_effect(v, earlier, mean), [[2, 2], [0, 2], [0, 0]])


def test_draw_displays_follows_the_weights():
    # Equal weights keep the uniform keys' order: the draws of the generator before worlds.
    keys = np.random.default_rng(0).random((5, 6))
    uniform = draw_displays(np.random.default_rng(0), 5, np.ones(6), 3)
    np.testing.assert_array_equal(uniform, np.argsort(keys, axis=1)[:, :3])
    # Item 2 outweighs the others a millionfold: drawn first in nearly every row; item 0 (a
    # millionth of the rest) almost never drawn among 2 of 4.
    display = draw_displays(np.random.default_rng(1), 2000, np.array([1e-6, 1, 1e6, 1]), 2)
    assert np.mean(display[:, 0] == 2) > 0.99 and np.mean(display == 0) < 0.01
    assert all(len(set(row)) == 2 for row in display)


def test_draw_displays_with_each_rows_own_weights():
    # The same weights in every row draw as the shared weights do, from the same stream.
    shared = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    np.testing.assert_array_equal(
        draw_displays(np.random.default_rng(3), 7, np.tile(shared, (7, 1)), 3),
        draw_displays(np.random.default_rng(3), 7, shared, 3),
    )
    # Each row first draws the item its own weights favour a millionfold.
    favoured = np.array([0, 3, 1, 3])
    weights = np.ones((4, 4))
    weights[np.arange(4), favoured] = 1e6
    display = draw_displays(np.random.default_rng(4), 4, weights, 2)
    np.testing.assert_array_equal(display[:, 0], favoured)


def test_world_names_round_trip():
    assert DEFAULT_WORLD == "lag_popular_always" and len(world_names()) == 8
    for name in world_names():
        assert SyntheticConfig(**world_settings(name)).world == name
    assert SyntheticConfig().world == DEFAULT_WORLD
    with pytest.raises(DataError, match="HISTORY_DISPLAY_CLICKS"):
        world_settings("lag_popular")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"items": 4}, r"--items: 4 is out of range: need at least --max_display \(10\)"),
        (
            {"min_display": 5, "max_display": 3},
            r"--max_display: 3 is out of range: need at least --min_display \(5\)",
        ),
        ({"display": "fancy"}, r"--display: 'fancy' is out of range: need one of"),
    ],
)
def test_settings_out_of_range_name_what_they_conflict_with(settings, message):
    with pytest.raises(DataError, match=message):
        SyntheticConfig(**settings).validate()


def test_satiation_settings_name_what_they_conflict_with():
    from ganrl.data.satiation import SatiationConfig

    with pytest.raises(
        DataError, match=r"--topics: 30 is out of range: need between 1 and --items"
    ):
        SatiationConfig(items=20, topics=30).validate()
    with pytest.raises(
        DataError, match=r"--leave_max: 0.1 is out of range: need between --leave_base"
    ):
        SatiationConfig(leave_base=0.2, leave_max=0.1).validate()
    SatiationConfig().validate()


@pytest.mark.parametrize("true_features", [False, True])
def test_models_get_item_ids_unless_asked(tmp_path, true_features):
    config = SyntheticConfig(
        users=20,
        items=30,
        events_per_user=3,
        posterior_samples=20,
        true_vectors_as_features=true_features,
    )
    converted, truth = make_synthetic(str(tmp_path), "s", 0, config)
    features = converted.dataset.item_features
    assert features.identity and features.n_items == 30
    if true_features:
        np.testing.assert_allclose(features.dense, truth["item_vectors"], rtol=1e-6)
    else:
        assert features.dense is None and converted.stats["feature_dim"] == 30
    assert SyntheticConfig.from_json(truth["config"]) == config


def test_popular_displays_favour_high_bias_items(tmp_path):
    # gamma = 2 and b ~ N(0, 0.25): an item one sd above the mean is shown e^1 = 2.7 times
    # as often as an average one; the shown items' mean bias lies gamma * 0.25 = 0.5 above
    # the catalogue's (a little less, as a set holds an item once); uniform draws show the
    # catalogue's mean.
    shown_bias = {}
    for display in ("uniform", "popular"):
        config = SyntheticConfig(users=100, display=display, posterior_samples=20)
        converted, truth = make_synthetic(str(tmp_path), display, 0, config)
        ev = converted.events
        bias = truth["item_bias"]
        shown_bias[display] = bias[ev.display[ev.display_mask]].mean() - bias.mean()
    assert abs(shown_bias["uniform"]) < 0.03 and shown_bias["popular"] > 0.4
