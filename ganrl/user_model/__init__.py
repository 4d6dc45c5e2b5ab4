"""The generative adversarial user model: encoders, choice model, objectives, loading."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from ganrl.data import safe_io
from ganrl.data.dataset import ItemFeatures
from ganrl.user_model.choice_model import ChoiceModel
from ganrl.user_model.model import ModelConfig, UserModel, checkpoint_variables

__all__ = ["ChoiceModel", "LoadedUserModel", "ModelConfig", "UserModel", "load_user_model"]


@dataclasses.dataclass
class LoadedUserModel:
    """A trained user model from a run folder.

    Attributes:
      reward: r(s, a), the learned reward.
      behavior: phi, the choice model clicks are sampled from (the same object as `reward`
        after entropy-only training, whose closed-form choice is the softmax of r).
      config: the run's `config.json`.
      item_features: the dataset's item features.
      run_dir: where it came from.
    """

    reward: UserModel
    behavior: UserModel
    config: dict
    item_features: ItemFeatures
    run_dir: str

    @property
    def n_items(self) -> int:
        return self.item_features.n_items

    @property
    def behavior_choice(self) -> ChoiceModel:
        """phi as a choice model: what users click."""
        return ChoiceModel(self.behavior)

    @property
    def reward_choice(self) -> ChoiceModel:
        """r as a choice model: what a click is worth."""
        return ChoiceModel(self.reward)

    def score(self, history: list[int], display: list[int]) -> np.ndarray:
        """Click probabilities of `display` items for a user who clicked `history` (in order).

        Returns:
          `[len(display) + 1]` probabilities; the last is the no-click option (0 when the
          model conditions on a click).
        """
        history, display = list(history), list(display)
        if not display:
            raise ValueError("display: expected at least one item id, got none")
        for name, ids in (("history", history), ("display", display)):
            bad = [i for i in ids if not _item_id(i, self.n_items)]
            if bad:
                raise ValueError(
                    f"{name}: item id {bad[0]!r}; expected integer item ids "
                    f"0..{self.n_items - 1} (this model's catalogue)"
                )
        choice_model = self.behavior_choice
        state = choice_model.replay(np.asarray([history], np.int32).reshape(1, len(history)))
        items = tf.constant([display], tf.int32)
        return choice_model.click_probabilities(state, items)[0].numpy()


def _item_id(value, n_items: int) -> bool:
    """Whether `value` is an integer item id of a catalogue of `n_items` (bools are not)."""
    return (
        isinstance(value, (int, np.integer))
        and not isinstance(value, (bool, np.bool_))
        and 0 <= int(value) < n_items
    )


def load_user_model(run_dir: str, checkpoint: str = "loss") -> LoadedUserModel:
    """Loads the user model of a run folder, from its best-`checkpoint` weights.

    Args:
      run_dir: a run folder written by `experiment_user_model/main_gan_user_model.py`.
      checkpoint: 'loss', 'prec1', 'prec2' (the best-by-validation checkpoints) or 'latest'.
    """
    model_json = os.path.join(run_dir, "model.json")
    if not os.path.exists(model_json):
        raise FileNotFoundError(f"{run_dir}: not a user-model run folder (no model.json)")
    with open(model_json) as f:
        meta = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    features_path = os.path.join(run_dir, "item_features.pkl")
    (features_obj,) = safe_io.load_pickles(features_path, 1)
    item_features = ItemFeatures.from_pickle_object(features_obj, features_path)
    if item_features.n_items != meta["n_items"]:
        raise safe_io.DataError(
            f"{features_path}: item features of {item_features.n_items} "
            f"items, expected {meta['n_items']} (n_items of {model_json})"
        )
    model_config = ModelConfig(**meta["model"])
    reward = UserModel(item_features, model_config, meta["has_no_click"], name="reward")
    models = {"reward": reward}
    behavior = reward
    if meta["regularizer"] == "L2":
        behavior = UserModel(item_features, model_config, meta["has_no_click"], name="behavior")
        models["behavior"] = behavior
    folder = os.path.join(
        run_dir, "checkpoints", "latest" if checkpoint == "latest" else f"best_{checkpoint}"
    )
    path = tf.train.latest_checkpoint(folder)
    if path is None:
        raise FileNotFoundError(f"{folder}: no checkpoint")
    tf.train.Checkpoint(**checkpoint_variables(**models)).restore(
        path
    ).expect_partial().assert_existing_objects_matched()
    if (
        reward.no_click_logit is not None
        and meta["regularizer"] == "L2"
        and not meta.get("reward_zero")
    ):
        # An adversarial run from before its step trained the reward's no-click utility: it
        # paid the no-click option 0 against the utilities themselves and left the variable
        # at its start (the pre-training's), so the reward it learned is the utility alone.
        reward.no_click_logit.assign(0.0)
    return LoadedUserModel(
        reward=reward,
        behavior=behavior,
        config=config,
        item_features=item_features,
        run_dir=run_dir,
    )
