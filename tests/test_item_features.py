"""Item statistics (the 'generalising' item features): by hand, and free of leakage."""

import numpy as np
import tensorflow as tf

from ganrl.data.dataset import EventArrays, ItemFeatures, SplitData
from ganrl.data.item_stats import PRIOR_STRENGTH, item_statistics, with_statistics
from ganrl.user_model.model import ModelConfig, UserModel
from tests.tiny_data import tiny_dataset


def test_statistics_by_hand():
    behavior = [[0, [[0, 1], [1, 2]], [1, -1]], [1, [[1, 3]], [3]]]
    stats = item_statistics(EventArrays.from_behavior(behavior, None, 2, 5))
    # Displays: item 0: 1, item 1: 3, item 2: 1, item 3: 1, item 4: 0. Clicks: 1 and 3 once.
    np.testing.assert_allclose(stats[:, 0], np.log1p([1, 3, 1, 1, 0]), rtol=1e-6)
    np.testing.assert_allclose(stats[:, 1], np.log1p([0, 1, 0, 1, 0]), rtol=1e-6)
    prior = 2 / 6  # clicks per display
    a = PRIOR_STRENGTH
    np.testing.assert_allclose(stats[1, 2], (1 + a * prior) / (3 + a), rtol=1e-6)
    np.testing.assert_allclose(stats[4, 2], prior, rtol=1e-6)  # unseen: the prior
    assert stats[:, 3].tolist() == [1, 1, 1, 1, 0]


def test_statistics_use_training_users_only():
    dataset = tiny_dataset()
    data = SplitData.from_dataset(dataset)
    before = with_statistics(dataset.item_features, data.splits["train"]).dense
    test_user = dataset.split[2][0]
    entry = next(e for e in dataset.behavior if e[0] == test_user)
    entry[2] = [d[-1] for d in entry[1]]  # change every click of a test user
    changed = SplitData.from_dataset(dataset)
    after = with_statistics(dataset.item_features, changed.splits["train"]).dense
    np.testing.assert_array_equal(before, after)


def test_permuting_a_display_set_permutes_the_predictions():
    tf.keras.utils.set_random_seed(0)
    features = ItemFeatures(6, dense=np.random.default_rng(0).random((6, 3)).astype(np.float32))
    model = UserModel(features, ModelConfig(user_model="PW", dims="8", item_dim=4), False)
    state = model.state_vector(model.update_state(model.initial_state(1), tf.constant([2]),
                                                  tf.constant([True])))
    u = model.utilities(state, tf.constant([[0, 1, 3, 5]])).numpy()[0]
    u_perm = model.utilities(state, tf.constant([[5, 3, 0, 1]])).numpy()[0]
    np.testing.assert_allclose(u_perm, u[[3, 2, 0, 1]], rtol=1e-6)
