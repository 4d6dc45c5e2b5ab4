"""Tiny hand-made datasets for the tests."""

from __future__ import annotations

import numpy as np

from ganrl.data.dataset import ClickDataset, ItemFeatures, save_dataset


def tiny_dataset(
    n_users: int = 24,
    n_items: int = 12,
    events: int = 4,
    display: int = 4,
    no_click_every: int = 0,
    seed: int = 0,
    name: str = "tiny",
) -> ClickDataset:
    """Users who always click the lowest-numbered displayed item (a learnable rule); with
    `no_click_every`=n, every n-th display set has no click."""
    rng = np.random.default_rng(seed)
    behavior = []
    for user in range(n_users):
        displays, clicks = [], []
        for t in range(events):
            shown = rng.choice(n_items, size=rng.integers(2, display + 1), replace=False)
            displays.append([int(i) for i in shown])
            no_click = no_click_every and (user * events + t) % no_click_every == 0
            clicks.append(-1 if no_click else int(shown.min()))
        behavior.append([user, displays, clicks])
    split = half_quarter_split(n_users)
    return ClickDataset(
        name=name, behavior=behavior, item_features=ItemFeatures(n_items), split=split
    )


def half_quarter_split(n_users: int) -> tuple[list[int], list[int], list[int]]:
    """Users 0..n-1 split in order: the first half trains, the next quarter validates."""
    users = list(range(n_users))
    return users[: n_users // 2], users[n_users // 2 : 3 * n_users // 4], users[3 * n_users // 4 :]


def write_tiny_dataset(folder: str, **kwargs) -> ClickDataset:
    dataset = tiny_dataset(**kwargs)
    save_dataset(str(folder), dataset)
    return dataset


def train_tiny_user_model(folder) -> str:
    """Trains a tiny PW user model (4 iterations) on a tiny dataset with no-click events
    under `folder`; returns its run folder."""
    from ganrl.data.dataset import SplitData
    from ganrl.train import user_model as trainer
    from ganrl.user_model.model import ModelConfig

    write_tiny_dataset(folder / "data", n_users=24, no_click_every=4)
    model = ModelConfig(user_model="PW", dims="8", item_dim=4, pw_dim=2, pw_band_size=3)
    config = trainer.TrainConfig(
        dataset="tiny",
        data_folder=str(folder / "data"),
        save_dir=str(folder / "run"),
        num_itrs=4,
        eval_every=2,
        batch_size=8,
        learning_rate=0.05,
        model=model,
    )
    trainer.UserModelRunner(
        config,
        SplitData.from_dataset(tiny_dataset(n_users=24, no_click_every=4)),
        progress=lambda _: None,
    ).run()
    return str(folder / "run")
