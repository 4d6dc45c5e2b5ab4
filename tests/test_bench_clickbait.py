"""benchmarks/bench_clickbait_model.py's demoted GAN-Greedy: delta 0 is GAN-Greedy's ranking,
delta inf never shows the marked items, a finite delta lowers exactly their scores."""

import numpy as np
import tensorflow as tf

from benchmarks.bench_clickbait_model import Demoted, simulated_clicks
from ganrl.data.dataset import ItemFeatures
from ganrl.policy.heuristics import learned_rewards
from ganrl.user_model import LoadedUserModel
from ganrl.user_model.model import ModelConfig, UserModel


def _loaded():
    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
    model = UserModel(ItemFeatures(9), config, has_no_click=True)
    return LoadedUserModel(model, model, {}, ItemFeatures(9), run_dir="")


def test_demotion_lowers_only_the_marked_items():
    loaded = _loaded()
    marked = np.zeros(9, bool)
    marked[[1, 4, 7]] = True
    history = tf.constant([[2, 3, -1], [-1, -1, -1]], tf.int32)
    candidates = tf.tile(tf.range(9, dtype=tf.int32)[None], [2, 1])
    r = learned_rewards(loaded.reward, history, candidates).numpy()
    np.testing.assert_allclose(
        Demoted(loaded, marked, 0.0, 2).scores(history, candidates).numpy(), r, atol=1e-6
    )
    lowered = Demoted(loaded, marked, 0.5, 2).scores(history, candidates).numpy()
    np.testing.assert_allclose(r - lowered, np.tile(0.5 * marked, (2, 1)), atol=1e-6)
    never = Demoted(loaded, marked, np.inf, 2).scores(history, candidates).numpy()
    top = np.argsort(-never, axis=1)[:, :6]
    assert not marked[top].any()


def test_simulated_clicks_of_delta_zero_repeat_themselves():
    loaded = _loaded()
    marked = np.arange(9) % 3 == 0
    a, b, c = simulated_clicks(loaded, marked, (0.0, 0.0, np.inf), 2, 3, 16, seed=1)
    assert a == b  # the same users and noise for each delta
    assert np.isfinite(c)


def test_demoted_greedy_never_shows_the_marked_items_in_its_simulator():
    loaded = _loaded()
    marked = np.arange(9) < 4
    from ganrl.simulator.simulator import Simulator, SimulatorConfig

    sim = Simulator(loaded, SimulatorConfig(k=2, horizon=2, seed=0))
    observation = sim.reset(8)
    slate = Demoted(loaded, marked, np.inf, 2).select(observation).numpy()
    shown = np.take_along_axis(observation.candidates.numpy(), slate, axis=1)
    assert slate.shape == (8, 2) and not marked[shown].any()
