"""A `TrainConfig` from flat settings named as the user-model entry point's flags.

`experiment_user_model/main_gan_user_model.py` and `main_table.py` read their flags into one
flat dict (`ganrl.cli.user_model_flags`); this module turns it into the frozen config, so the
mapping is written once and needs no flags:

  config = train_config({"dataset": "yelp", "user_model": "PW", "num_itrs": 500})

A setting named as a `ModelConfig` field goes to the model, any other to the `TrainConfig`.
A model option left `None` takes the value of the `item_features` preset
(`ganrl.user_model.model.MODEL_PRESETS`), else the `ModelConfig` default.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from ganrl.train.user_model import TrainConfig
from ganrl.user_model.model import MODEL_PRESETS, ModelConfig

MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig))
TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"model"}


def run_dir_name(dataset: str, user_model: str, regularizer: str, seed: int) -> str:
    """The name of a user-model run folder: `{dataset}__{user_model}__{regularizer}__{seed}`."""
    return f"{dataset}__{user_model}__{regularizer}__{seed}"


def train_config(settings: Mapping[str, Any]) -> TrainConfig:
    """The `TrainConfig` of flat `settings` (see the module docstring). An empty or absent
    `save_dir` becomes `runs/{run_dir_name(...)}`. Raises `ValueError` for a name that is no
    field of either config, or for a value the configs' checks refuse."""
    unknown = sorted(set(settings) - MODEL_FIELDS - TRAIN_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown settings {unknown}: expected fields of TrainConfig or ModelConfig"
        )
    train = {k: v for k, v in settings.items() if k in TRAIN_FIELDS}
    chosen = {k: v for k, v in settings.items() if k in MODEL_FIELDS and v is not None}
    item_features = train.get("item_features", TrainConfig.item_features)
    if item_features not in MODEL_PRESETS:
        raise ValueError(
            f"item_features={item_features!r}: expected one of {', '.join(MODEL_PRESETS)}"
        )
    model = ModelConfig(**{**MODEL_PRESETS[item_features], **chosen})
    if not train.get("save_dir"):
        train["save_dir"] = os.path.join(
            "runs",
            run_dir_name(
                train.get("dataset", TrainConfig.dataset),
                model.user_model,
                train.get("regularizer", TrainConfig.regularizer),
                train.get("seed", TrainConfig.seed),
            ),
        )
    return TrainConfig(model=model, **train)
