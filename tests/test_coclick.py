"""The co-click start of the item embedding (`ganrl.user_model.coclick`)."""

import dataclasses

import numpy as np
import pytest

from ganrl.data.dataset import ClickDataset, ItemFeatures, SplitData
from ganrl.train import user_model as trainer
from ganrl.train.flat_settings import train_config
from ganrl.user_model.coclick import coclick_embeddings, ppmi, user_item_clicks
from ganrl.user_model.model import ModelConfig
from tests.tiny_data import half_quarter_split


def _two_group_dataset(n_users=60, seed=0) -> ClickDataset:
    """12 items in two groups (0-5, 6-11); each user clicks only within her own group."""
    rng = np.random.default_rng(seed)
    behavior = []
    for user in range(n_users):
        group = np.arange(6) + 6 * (user % 2)
        displays, clicks = [], []
        for _ in range(5):
            shown = np.concatenate([rng.choice(group, 2, replace=False), rng.choice(12, 2)])
            shown = list(dict.fromkeys(int(i) for i in shown))
            displays.append(shown)
            clicks.append(shown[0])
        behavior.append([user, displays, clicks])
    return ClickDataset("groups", behavior, ItemFeatures(12), half_quarter_split(n_users))


def test_user_item_clicks_keeps_each_users_newest_distinct_items():
    behavior = [
        [0, [[1, 2], [3, 1], [2, 4], [5, 1]], [1, 3, 2, 1]],  # clicks 1, 3, 2, 1
        [1, [[4, 0]], [-1]],
    ]
    dataset = ClickDataset("t", behavior, ItemFeatures(6), ([0, 1], [], []))
    events = dataset.event_arrays("train", max_display=2)
    full = user_item_clicks(events, 6, max_items=10).toarray()
    np.testing.assert_array_equal(full, [[0, 1, 1, 1, 0, 0], [0] * 6])
    # At most two: the newest distinct clicks are 1 (event 3) and 2 (event 2), not 3.
    two = user_item_clicks(events, 6, max_items=2).toarray()
    np.testing.assert_array_equal(two[0], [0, 1, 1, 0, 0, 0])


def test_ppmi_by_hand():
    # Users: {0, 1}, {0, 1}, {1, 2}. Co-click counts: (0,1) 2, (1,2) 1; row totals 2, 3, 1;
    # total 6. PMI(0,1) = log(2 * 6 / (2 * 3)) = log 2; PMI(1,2) = log(1 * 6 / (3 * 1)) = log 2.
    import scipy.sparse as sp

    clicks = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1]], float))
    table = ppmi(clicks).toarray()
    expected = np.zeros((3, 3))
    expected[0, 1] = expected[1, 0] = expected[1, 2] = expected[2, 1] = np.log(2)
    np.testing.assert_allclose(table, expected)


def test_items_clicked_by_the_same_users_start_close():
    dataset = _two_group_dataset()
    train = dataset.event_arrays("train", max_display=4)
    table = coclick_embeddings(train, 12, dim=4, scale=0.05, seed=0)
    assert table.shape == (12, 4) and table.dtype == np.float32
    assert table.std() == pytest.approx(0.05, rel=0.3)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cosine = unit @ unit.T
    same = np.equal.outer(np.arange(12) // 6, np.arange(12) // 6) & ~np.eye(12, dtype=bool)
    assert cosine[same].mean() > 0.5 > cosine[~same].mean()
    np.testing.assert_array_equal(table, coclick_embeddings(train, 12, dim=4, seed=0))


def test_without_co_clicks_the_start_is_the_random_one():
    behavior = [[u, [[u % 5, (u + 1) % 5]], [0]] for u in range(8)]  # one click a user
    dataset = ClickDataset("t", behavior, ItemFeatures(5), (list(range(8)), [], []))
    table = coclick_embeddings(dataset.event_arrays("train", max_display=2), 5, dim=3, seed=1)
    expected = np.random.default_rng(1).normal(0.0, 0.05, (5, 3)).astype(np.float32)
    np.testing.assert_array_equal(table, expected)


def test_generalising_preset_starts_from_coclicks_and_onehot_does_not(tmp_path):
    assert train_config({"item_features": "generalising"}).model.item_init == "coclick"
    assert train_config({"item_features": "onehot"}).model.item_init == "random"
    with pytest.raises(ValueError, match="item_init"):
        ModelConfig(item_init="svd")
    dataset = _two_group_dataset()
    model = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
    config = trainer.TrainConfig(
        dataset="groups",
        save_dir=str(tmp_path / "run"),
        num_itrs=2,
        eval_every=2,
        seed=3,
        model=dataclasses.replace(model, item_init="coclick"),
    )
    split = SplitData.from_dataset(dataset)
    runner = trainer.UserModelRunner(config, split, progress=lambda _: None)
    expected = coclick_embeddings(split.splits["train"], 12, 4, seed=3)
    np.testing.assert_array_equal(runner.reward.items.identity.embeddings.numpy(), expected)
    config = dataclasses.replace(config, save_dir=str(tmp_path / "random"), model=model)
    runner = trainer.UserModelRunner(config, split, progress=lambda _: None)
    assert not np.allclose(runner.reward.items.identity.embeddings.numpy(), expected)
