"""benchmarks/bench_fitted_simulator.py's simulator of a world's own form: with the world's
own parameters it is the world."""

import numpy as np

from benchmarks.bench_fitted_simulator import FittedEnvironment, lag_effect
from ganrl.data.synthetic import SyntheticConfig, world_settings
from ganrl.sim2real.true_env import SyntheticEnvironment


def test_lag_effect_by_hand():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    earlier = np.array([[2, 1, 0], [1, -1, -1], [-1, -1, -1]])  # most recent first
    weights = np.array([1.0, 0.5, 0.25])
    expected = [
        [3.0 + 0.0 + 0.25, 1.0 + 1.0 + 0.0],  # v2 + 0.5 v1 + 0.25 v0
        [0.0, 2.0],
        [0.0, 0.0],
    ]
    np.testing.assert_allclose(lag_effect(v, earlier, weights), expected)


def test_with_the_worlds_own_parameters_it_is_the_world():
    config = SyntheticConfig(
        feature_dim=3, items=8, max_display=4, **world_settings("lag_popular_always")
    )
    rng = np.random.default_rng(0)
    v, b = rng.normal(size=(8, 3)), rng.normal(size=8)
    lags = config.history_weight * config.history_decay ** np.arange(config.history_lags)
    true_env = SyntheticEnvironment(config, v, b, reward="utility")
    fitted = FittedEnvironment(config, v, b, lags)
    for env in (true_env, fitted):
        env.reset(50, seed=3)
    slates = np.argsort(np.random.default_rng(1).random((6, 50, 8)), axis=2)[:, :, :4]
    for slate in slates:  # the same users, slates and draws: the same clicks and rewards
        np.testing.assert_allclose(fitted.utilities(), true_env.utilities())
        a, b_ = true_env.step(slate), fitted.step(slate)
        np.testing.assert_array_equal(a.clicked_item, b_.clicked_item)
        np.testing.assert_allclose(a.reward, b_.reward)
