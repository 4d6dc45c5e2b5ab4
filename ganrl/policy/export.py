"""Loading a trained policy from its run folder, and SavedModel exports that serve without
ganrl's Python code.

  policy = load_policy("runs/policy/yelp__0")                      # the trained CDQN
  slates = recommend(policy, histories, candidates, k=5)  # [U, H] most recent first -> [U, 5]
  slate = recommend(policy, history=[12, 40], candidates=[3, 7, 40, 51, 60, 77])  # one user
  export_policy(policy, "export/cdqn"); export_user_model(model, "export/user_model")

Exported signatures (int32 inputs, -1 pads histories, most recent click first; each is also
the SavedModel's `serving_default`, which serving tools call when no signature is named):
- user model `score(history [B, H], display [B, D]) -> probabilities [B, D + 1]` (the last
  column is no click);
- policy `recommend(history [B, H], candidates [B, N]) -> slate [B, k]` item ids.
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import tensorflow as tf

from ganrl.policy.base import Policy, PolicyFeatures
from ganrl.user_model import LoadedUserModel, load_user_model


def load_policy(run_dir: str, name: str = "cdqn") -> Policy:
    """Rebuilds policy `name` of a policy run folder with the trained weights it was tested
    with.

    Builds only what the policy needs (the training user model, its item features and the
    training users' clicks), not the run's simulators or test model, and writes nothing: the
    run folder is read only. The returned policy carries `history_length`, the clicks it was
    trained to see (`recommend` trims or pads histories to it).
    """
    from ganrl.policy.runner import (
        PolicyConfig,
        PolicyInputs,
        load_training_data,
        make_policy,
        reward_members,
    )

    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{run_dir}: not a policy run folder (no config.json)")
    with open(config_path) as f:
        fields = json.load(f)
    if not isinstance(fields, dict) or "user_model_dir" not in fields:
        raise ValueError(
            f"{run_dir}: not a policy run folder ({config_path} names no user_model_dir; a "
            "user-model run folder loads with ganrl.user_model.load_user_model)"
        )
    config = PolicyConfig.from_dict(fields)
    # Only a policy the run finished has the weights it was tested with.
    if name not in config.policies:
        raise FileNotFoundError(
            f"{run_dir}: policy {name!r} is not among the run's policies "
            f"({', '.join(config.policies)}): rerun the run with --policy naming it"
        )
    if not os.path.exists(os.path.join(run_dir, "policies", f"{name}.json")):
        raise FileNotFoundError(
            f"{run_dir}: policy {name!r} has not finished training and testing here (no "
            f"policies/{name}.json): rerun the run to resume it"
        )
    train_model = load_user_model(config.user_model_dir)
    members = ()
    if config.uses_ensemble(name) or config.averages_reward(name):
        # The policy's residual bound shrinks where the members disagree, or its learned
        # reward is their mean: it serves with the members it trained with.
        members = reward_members(config, {config.user_model_dir: train_model})
    inputs = PolicyInputs(
        PolicyFeatures.from_user_model(train_model.reward),
        train_model.reward,
        load_training_data(train_model).splits["train"],
        config.n_candidates or train_model.n_items,
        ensemble_models=members,
        mean_reward=config.mean_reward,
    )
    policy = make_policy(name, config, inputs)
    policy.history_length = config.history_length
    policy.n_items = train_model.n_items
    objects = policy.checkpoint_objects()
    if objects:
        # The snapshot the run tested (best on its validation), else the last one.
        best_folder = os.path.join(run_dir, "checkpoints", f"{name}__train_best")
        best = os.path.join(best_folder, "best")  # a run folder before named snapshots
        if os.path.exists(os.path.join(best_folder, "best.json")):
            with open(os.path.join(best_folder, "best.json")) as f:
                best = os.path.join(best_folder, json.load(f).get("checkpoint", "best"))
        if os.path.exists(best + ".index"):
            with _mismatch_as_error(best, name, config_path):
                tf.train.Checkpoint(**objects).read(best).assert_consumed()
            return policy
        folder = os.path.join(run_dir, "checkpoints", f"{name}__train")
        path = tf.train.latest_checkpoint(folder)
        if path is None:
            raise FileNotFoundError(f"{folder}: no checkpoint of policy {name!r}")
        iteration = tf.Variable(0, dtype=tf.int64)
        tf.train.Checkpoint(iteration=iteration, **objects).restore(path).expect_partial()
    return policy


@contextlib.contextmanager
def _mismatch_as_error(checkpoint: str, name: str, config_path: str):
    """One clear error when a checkpoint does not hold the variables of the policy its run
    folder's config.json describes. (Variables are named by their order, not by what they
    are: the two CDQN forms have as many of the same shapes, so only config.json, through
    `PolicyConfig.from_dict`, tells them apart.)"""
    try:
        yield
    except AssertionError as e:
        raise ValueError(
            f"{checkpoint}: the checkpoint does not fit policy {name!r} as {config_path} "
            "describes it (settings changed by hand, or a run folder of another ganrl "
            "version?)"
        ) from e


def padded_histories(histories, history_length: int, lengths=None, mask=None) -> np.ndarray:
    """`[U, history_length]` int32 histories in the simulator's form (most recent click
    first, -1 padded).

    Args:
      histories: `[U, H]` item ids, most recent click first; entries < 0 are padding.
      history_length: the width a policy sees: longer histories keep their most recent
        `history_length` clicks, shorter ones are padded with -1.
      lengths: optional `[U]` valid clicks per row (the first `lengths[u]` entries).
      mask: optional `[U, H]` bool, True on valid clicks (valid clicks come first).
    """
    h = integer_ids(
        "histories", histories, "[users, clicks] integer item ids, rows padded with -1 to one width"
    )
    if h.ndim != 2:
        raise ValueError(f"histories: expected [users, clicks], got shape {h.shape}")
    valid = np.ones(h.shape, dtype=bool)
    if lengths is not None:
        valid &= np.arange(h.shape[1])[None, :] < np.asarray(lengths)[:, None]
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    below = valid & (h < -1)
    if below.any():
        where = [int(i) for i in np.argwhere(below)[0]]
        raise ValueError(
            f"histories: item id {int(h[tuple(where)])} at index {where}; expected an item id "
            "or -1 (padding)"
        )
    valid &= h >= 0
    h = np.where(valid, h, -1)[:, :history_length]
    too_large = h > np.iinfo(np.int32).max
    if too_large.any():
        where = [int(i) for i in np.argwhere(too_large)[0]]
        raise ValueError(
            f"histories: item id {int(h[tuple(where)])} at index {where}; expected an item id "
            "of the policy's catalogue"
        )
    out = np.full((len(h), history_length), -1, np.int32)
    out[:, : h.shape[1]] = h
    return out


def recommend(
    policy: Policy,
    histories=None,
    candidates=None,
    k: int | None = None,
    *,
    lengths=None,
    mask=None,
    history: list[int] | None = None,
    events=None,
):
    """Slates for many users at once, one batched call of the policy.

    Args:
      policy: a policy (`load_policy`); its `history_length` (default 10) is the history
        width it sees.
      histories: `[U, H]` int array or tensor, each user's recent clicks, most recent first,
        padded with -1 (or delimited by `lengths [U]` or `mask [U, H]`).
      candidates: `[U, C]` candidate ids per user, or `[C]` shared by every user.
      k: slate size, at most the policy's own (default: the policy's); a smaller k keeps
        the policy's first k picks.
      history: the one-user form: a list of clicked ids, OLDEST first, with `candidates` a
        list; returns a list of k item ids.
      events: optional `[U, E, 1 + D]` int array, each user's recent display sets, most
        recent first (`ganrl.simulator.simulator.Observation.events`: per event the clicked
        item or -1 for none, then the D items shown, -1 padded; rows of -1 are no event).
        Their clicks must be the most recent ones of `histories`. A policy whose user model
        reads what users were shown (GAN-Greedy) then knows what each user passed over.

    Returns:
      `[U, k]` int32 numpy array of item ids (from each user's candidates, no repeats).
    """
    from ganrl.simulator.simulator import Observation

    if history is not None:  # the one-user form
        if histories is not None:
            raise ValueError("recommend: give `histories` (many users) or `history` (one)")
        slate = recommend(policy, [list(reversed(history)) or [-1]], candidates, k)
        return [int(item) for item in slate[0]]
    k = policy.k if k is None else int(k)
    if not 1 <= k <= policy.k:
        raise ValueError(f"k={k}: expected 1..{policy.k} (the policy's slate size)")
    h = padded_histories(histories, getattr(policy, "history_length", 10), lengths, mask)
    cands = integer_ids("candidates", candidates, "integer item ids")
    if cands.ndim == 1:
        cands = np.broadcast_to(cands[None, :], (len(h), len(cands)))
    if cands.ndim != 2 or len(cands) != len(h):
        raise ValueError(f"candidates: expected [C] or [{len(h)}, C], got shape {cands.shape}")
    if cands.shape[1] < policy.k:
        raise ValueError(
            f"candidates: {cands.shape[1]} per user, expected at least the "
            f"policy's slate size {policy.k} (it picks its {policy.k} items before a "
            "smaller k keeps the first ones)"
        )
    n_items = _catalogue_size(policy)
    _check_ids("candidates", cands, n_items, padding=False)
    _check_ids("histories", h, n_items, padding=True)
    cands = cands.astype(np.int32)
    ordered = np.sort(cands, axis=1)
    repeated = np.nonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))[0]
    if len(repeated):
        row = int(repeated[0])
        item = int(ordered[row, 1:][ordered[row, 1:] == ordered[row, :-1]][0])
        raise ValueError(
            f"candidates: user {row} has item {item} more than once; expected distinct "
            "item ids per user"
        )
    if events is not None:
        events = integer_ids("events", events, "integer item ids")
        if events.ndim != 3 or len(events) != len(h) or events.shape[2] < 2:
            raise ValueError(
                f"events: expected [{len(h)}, E, 1 + D] (a click and D shown items per "
                f"event), got shape {events.shape}"
            )
        _check_ids("events", events, n_items, padding=True)
        _check_event_clicks(events, h)
        events = tf.constant(events.astype(np.int32))
    cands = tf.constant(cands)
    slate = policy.select(Observation(tf.constant(h), cands, 0, events=events))[:, :k]
    return tf.gather(cands, tf.cast(slate, tf.int32), batch_dims=1).numpy()


def integer_ids(name: str, values, expected: str) -> np.ndarray:
    """`values` as an int64 array; a clear `ValueError` for anything that is not a whole
    number within int64 (a float id such as 2.5, a string, an id too large), which a cast
    would otherwise truncate or wrap around into another item's id."""
    try:
        array = np.asarray(values)
        if array.dtype.kind in "ib" or (
            array.dtype.kind == "u" and (array.size == 0 or array.max() <= np.iinfo(np.int64).max)
        ):
            return array.astype(np.int64)
        if array.dtype.kind == "f" and np.all(np.isfinite(array) & (array == np.round(array))):
            if array.size == 0 or np.abs(array).max() < 2.0**63:
                return array.astype(np.int64)
        if array.dtype.kind == "O":
            return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{name}: expected {expected} ({e})") from None
    flat = array.ravel()
    bad = next((v for v in flat if not _whole(v)), flat[0] if flat.size else None)
    bad = bad.item() if isinstance(bad, np.generic) else bad
    raise ValueError(f"{name}: expected {expected}, got {bad!r} ({array.dtype} values)")


def _whole(value) -> bool:
    """Whether `value` is a finite whole number within int64."""
    try:
        return float(value) == round(float(value)) and abs(float(value)) < 2.0**63
    except (TypeError, ValueError, OverflowError):
        return False


def _catalogue_size(policy: Policy) -> int | None:
    """The number of items `policy` knows (`load_policy` sets `n_items`; a policy built
    otherwise tells it by its item features), or None when it does not say."""
    n_items = getattr(policy, "n_items", None)
    if n_items is None and getattr(policy, "features", None) is not None:
        n_items = int(policy.features.item_table.shape[0])
    return n_items


def _check_event_clicks(events: np.ndarray, histories: np.ndarray) -> None:
    """A clear error when the clicks of `events [U, E, 1 + D]` (most recent first) are not
    the most recent clicks of `histories [U, H]`, as far as both reach."""
    clicked = events[:, :, 0] >= 0
    # Each user's clicked items in event order (most recent first), then -1s.
    order = np.argsort(~clicked, axis=1, kind="stable")
    clicks = np.where(
        np.take_along_axis(clicked, order, axis=1),
        np.take_along_axis(events[:, :, 0], order, axis=1),
        -1,
    )
    width = min(clicks.shape[1], histories.shape[1])
    compared = (clicks[:, :width] >= 0) & (histories[:, :width] >= 0)
    wrong = compared & (clicks[:, :width] != histories[:, :width])
    short = (clicks[:, :width] >= 0) & (histories[:, :width] < 0)
    bad = np.flatnonzero((wrong | short).any(axis=1))
    if len(bad):
        user = int(bad[0])
        raise ValueError(
            f"events: user {user}'s clicked items {clicks[user][clicks[user] >= 0].tolist()} "
            f"(most recent first) are not the most recent clicks of histories "
            f"{histories[user][histories[user] >= 0].tolist()}; expected the events of the "
            "same users, their clicks also in histories"
        )


def _check_ids(name: str, ids: np.ndarray, n_items: int | None, padding: bool) -> None:
    """A clear error for item ids outside the catalogue `0..n_items - 1` (with `padding`,
    -1 pads and is allowed)."""
    low = -1 if padding else 0
    bad = (ids < low) | (ids >= n_items if n_items is not None else False)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        expected = f"0..{n_items - 1}" if n_items is not None else "non-negative"
        pads = " or -1 (padding)" if padding else ""
        raise ValueError(
            f"{name}: item id {int(ids[where])} at index {list(where)}; expected an item "
            f"id {expected} (the policy's catalogue){pads}"
        )


def _graph_id_checks(n_items: int | None, **inputs) -> list:
    """In a SavedModel's graph: assertions that each input `name=(ids, padded)` holds item
    ids of the catalogue (-1 allowed where padded), failing with the input's name."""
    checks = []
    for name, (ids, padded) in inputs.items():
        low = -1 if padded else 0
        message = f"{name}: expected item ids {low}..{n_items - 1 if n_items else 'n - 1'}"
        checks.append(tf.debugging.assert_greater_equal(ids, low, message=message))
        if n_items is not None:
            checks.append(tf.debugging.assert_less(ids, n_items, message=message))
    return checks


def _tf_variables(*models) -> list[tf.Variable]:
    """The tf.Variables behind Keras models' weights, so that SavedModel tracks them."""
    return [getattr(w, "_value", w) for m in models for w in m.weights]


class _UserModelModule(tf.Module):
    def __init__(self, model: LoadedUserModel, history_length: int):
        super().__init__()
        self.model = model.behavior_choice
        self.n_items = model.n_items
        self.tracked = _tf_variables(model.behavior)
        spec = [
            tf.TensorSpec([None, history_length], tf.int32),
            tf.TensorSpec([None, None], tf.int32),
        ]
        self.score = tf.function(self._score, input_signature=spec)

    def _score(self, history, display):
        shown = tf.debugging.Assert(
            tf.reduce_all(tf.reduce_any(display >= 0, axis=1)),
            ["display: expected at least one shown item (not -1) per row"],
        )
        with tf.control_dependencies(
            _graph_id_checks(self.n_items, history=(history, True), display=(display, True))
            + [shown]
        ):
            history, display = tf.identity(history), tf.identity(display)
        state = self.model.replay_recent_first(history)
        return {
            "probabilities": self.model.click_probabilities(
                state, tf.maximum(display, 0), display >= 0
            )
        }


def export_user_model(model: LoadedUserModel, path: str, history_length: int = 10) -> None:
    """Writes a SavedModel with the `score` signature (see the module docstring). It reads
    the `history_length` most recent clicks of each history (older ones are not passed to
    it), where `LoadedUserModel.score` replays every click given: export with the width of
    the histories you serve."""
    module = _UserModelModule(model, history_length)
    tf.saved_model.save(
        module, path, signatures={"score": module.score, "serving_default": module.score}
    )


def _policy_variables(obj, seen: set[int] | None = None) -> list[tf.Variable]:
    """Every tf.Variable a policy's selection may read: of its Keras models and layers and
    its own variables, found through its attributes (and theirs, for ganrl's own objects)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, tf.Variable):
        return [obj]
    if isinstance(obj, tf.keras.layers.Layer):
        return _tf_variables(obj)
    if isinstance(obj, (list, tuple)):
        return [v for item in obj for v in _policy_variables(item, seen)]
    if isinstance(obj, dict):
        return [v for item in obj.values() for v in _policy_variables(item, seen)]
    if type(obj).__module__.startswith("ganrl.") and hasattr(obj, "__dict__"):
        return [v for item in vars(obj).values() for v in _policy_variables(item, seen)]
    return []


class _PolicyModule(tf.Module):
    def __init__(self, policy: Policy, history_length: int):
        super().__init__()
        self.policy = policy
        self.tracked = _policy_variables(policy)
        spec = [
            tf.TensorSpec([None, history_length], tf.int32),
            tf.TensorSpec([None, None], tf.int32),
        ]
        self.recommend = tf.function(self._recommend, input_signature=spec)

    def _recommend(self, history, candidates):
        from ganrl.simulator.simulator import Observation

        checks = _graph_id_checks(
            _catalogue_size(self.policy), history=(history, True), candidates=(candidates, False)
        )
        checks += _graph_candidate_checks(candidates, self.policy.k)
        with tf.control_dependencies(checks):
            history, candidates = tf.identity(history), tf.identity(candidates)
        observation = Observation(history, candidates, 0)
        if hasattr(self.policy, "select_graph"):
            slate = self.policy.select_graph(observation)
        else:
            slate = self.policy.select(observation)  # frozen: the slate it is tested with
        return {"slate": tf.gather(candidates, tf.cast(slate, tf.int32), batch_dims=1)}


def _graph_candidate_checks(candidates: tf.Tensor, k: int) -> list:
    """In a SavedModel's graph: at least `k` candidates per user, none listed twice (as
    `recommend` checks), failing with the input's name."""
    ordered = tf.sort(candidates, axis=1)
    return [
        tf.debugging.assert_greater_equal(
            tf.shape(candidates)[1], k, message=f"candidates: expected at least k={k} per user"
        ),
        tf.debugging.Assert(
            tf.reduce_all(ordered[:, 1:] != ordered[:, :-1]),
            ["candidates: expected distinct item ids per user"],
        ),
    ]


def export_policy(policy: Policy, path: str, history_length: int | None = None) -> None:
    """Writes a SavedModel with the `recommend` signature (see the module docstring); its
    history width is `history_length`, by default the policy's own (`load_policy`), else
    10.

    Raises:
      ValueError: the policy's selection cannot run as a TensorFlow graph (random's draws).
    """
    module = _PolicyModule(policy, history_length or getattr(policy, "history_length", 10))
    try:
        module.recommend.get_concrete_function()
    except (TypeError, ValueError, NotImplementedError, AttributeError) as e:
        raise ValueError(
            f"export_policy: {type(policy).__name__}'s selection does not run as a TensorFlow "
            f"graph (tracing it raised {type(e).__name__}); serve it with load_policy and "
            "recommend"
        ) from None
    tf.saved_model.save(
        module,
        path,
        signatures={"recommend": module.recommend, "serving_default": module.recommend},
    )
