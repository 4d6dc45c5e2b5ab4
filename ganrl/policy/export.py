"""Loading a trained policy from its run folder, and SavedModel exports that serve without
ganrl's Python code.

  policy = load_policy("runs/policy/yelp__0")                      # the trained CDQN
  slate = recommend(policy, history=[12, 40], candidates=[3, 7, 40, 51, 60, 77])
  export_policy(policy, "export/cdqn"); export_user_model(model, "export/user_model")

Exported signatures (int32 inputs, -1 pads histories, most recent click first):
- user model `score(history [B, H], display [B, D]) -> probabilities [B, D + 1]` (the last
  column is no click);
- policy `recommend(history [B, H], candidates [B, N]) -> slate [B, k]` item ids.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from ganrl.policy.base import Policy
from ganrl.user_model import LoadedUserModel


def load_policy(run_dir: str, name: str = "cdqn") -> Policy:
    """Rebuilds policy `name` of a policy run folder with the trained weights it was tested
    with."""
    from ganrl.policy.runner import PolicyConfig, PolicyRunner
    with open(os.path.join(run_dir, "config.json")) as f:
        config = PolicyConfig.from_dict(json.load(f))
    runner = PolicyRunner(config, progress=lambda _: None)
    policy = runner._policy(name)
    objects = policy.checkpoint_objects()
    if objects:
        # The snapshot the run tested (best on its validation), else the last one.
        best_folder = os.path.join(run_dir, "checkpoints", f"{name}__train_best")
        best = os.path.join(best_folder, "best")  # a run folder before named snapshots
        if os.path.exists(os.path.join(best_folder, "best.json")):
            with open(os.path.join(best_folder, "best.json")) as f:
                best = os.path.join(best_folder, json.load(f).get("checkpoint", "best"))
        if os.path.exists(best + ".index"):
            tf.train.Checkpoint(**objects).read(best).assert_consumed()
            return policy
        folder = os.path.join(run_dir, "checkpoints", f"{name}__train")
        path = tf.train.latest_checkpoint(folder)
        if path is None:
            raise FileNotFoundError(f"{folder}: no checkpoint of policy {name!r}")
        iteration = tf.Variable(0, dtype=tf.int64)
        tf.train.Checkpoint(iteration=iteration, **objects).restore(path).expect_partial()
    return policy


def recommend(policy: Policy, history: list[int], candidates: list[int]) -> list[int]:
    """The slate (item ids) `policy` shows a user who clicked `history` (oldest first)."""
    from ganrl.simulator.simulator import Observation
    h = np.full((1, 10), -1, np.int32)
    recent = list(reversed(history))[:10]
    h[0, :len(recent)] = recent
    obs = Observation(tf.constant(h), tf.constant([candidates], tf.int32), 0)
    slate = policy.select(obs).numpy()[0]
    return [int(candidates[i]) for i in slate]


def _tf_variables(*models) -> list[tf.Variable]:
    """The tf.Variables behind Keras models' weights, so that SavedModel tracks them."""
    return [getattr(w, "_value", w) for m in models for w in m.weights]


class _UserModelModule(tf.Module):
    def __init__(self, model: LoadedUserModel, history_length: int):
        super().__init__()
        self.model = model.behavior_choice
        self.tracked = _tf_variables(model.behavior)
        spec = [tf.TensorSpec([None, history_length], tf.int32),
                tf.TensorSpec([None, None], tf.int32)]
        self.score = tf.function(self._score, input_signature=spec)

    def _score(self, history, display):
        state = self.model.replay_recent_first(history)
        return {"probabilities": self.model.click_probabilities(state, tf.maximum(display, 0),
                                                                display >= 0)}


def export_user_model(model: LoadedUserModel, path: str, history_length: int = 10) -> None:
    """Writes a SavedModel with the `score` signature (see the module docstring)."""
    module = _UserModelModule(model, history_length)
    tf.saved_model.save(module, path, signatures={"score": module.score})


class _PolicyModule(tf.Module):
    def __init__(self, policy: Policy, history_length: int):
        super().__init__()
        self.policy = policy
        models = [m for m in (getattr(policy, "q", None), getattr(policy, "reward_model", None))
                  if m is not None]
        self.tracked = _tf_variables(*models)
        spec = [tf.TensorSpec([None, history_length], tf.int32),
                tf.TensorSpec([None, None], tf.int32)]
        self.recommend = tf.function(self._recommend, input_signature=spec)

    def _recommend(self, history, candidates):
        from ganrl.simulator.simulator import Observation
        slate = self.policy.select_graph(Observation(history, candidates, 0))
        return {"slate": tf.gather(candidates, slate, batch_dims=1)}


def export_policy(policy: Policy, path: str, history_length: int = 10) -> None:
    """Writes a SavedModel with the `recommend` signature (see the module docstring)."""
    module = _PolicyModule(policy, history_length)
    tf.saved_model.save(module, path, signatures={"recommend": module.recommend})
