"""When users leave: a per-step leave probability learned from the logs' session ends.

The released logs hold, per user, the display sets of one session in order; the last one is
where the session ended. A logger may also have cut long sessions: a user whose number of
display sets equals the log's longest is treated as CENSORED (we do not know whether she
left after her last display set), so her last event carries no label; every other event of
every user is a "stayed" label (0) and the last event of an uncensored user a "left" label
(1). With no leave at all in the training users' logs (every session as long as the
longest, as in a fixed-length log), there is no leave model: sessions last the horizon.

The model (`LeaveModel`): after each display set, P(leave) = sigmoid(w . f + b) over
`FEATURES`, which the trained (frozen) behaviour model gives for that display set from the
state before it: the best and the log-sum-exp of the displayed items' utilities (relative
to the no-click option when the model has one: how good the slate looked to her), whether
she clicked, and log(1 + the number of display sets before it in the session). Standardised
features; fitted by maximum likelihood (Newton's method) on the training users with an L2
penalty whose strength is selected by the validation users' log-likelihood.

`ensure_leave_model(run_dir)` fits it for a user-model run folder and writes
`leave_model.json` there atomically (a rerun reuses it); `load_leave_model(run_dir)` returns
None for a folder without one (older runs: no leaving), which the simulator reads as "users
never leave".
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from ganrl.data import safe_io
from ganrl.data.dataset import EventArrays, load_run_data
from ganrl.user_model.choice_model import ChoiceModel

LEAVE_FILE = "leave_model.json"
FEATURES = ("best_utility", "logsumexp_utility", "clicked", "log_steps_before")
# L2 strengths tried (on the mean log-likelihood per event, standardised features).
L2_GRID = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)


def session_labels(event_offsets: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave labels of every event from the session ends (module docstring).

    Args:
      event_offsets: `[U + 1]` user i's events are rows `event_offsets[i]:event_offsets[i+1]`.
      longest: the log's longest session (display sets); users that long are censored.

    Returns:
      label `[E]` float32 (1 at the last event of an uncensored user) and labelled `[E]` bool
      (False only at the last event of a censored user).
    """
    offsets = np.asarray(event_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    n = int(offsets[-1])
    label = np.zeros(n, np.float32)
    labelled = np.ones(n, bool)
    last = offsets[1:][lengths > 0] - 1
    censored = lengths[lengths > 0] >= longest
    label[last[~censored]] = 1.0
    labelled[last[censored]] = False
    return label, labelled


def steps_before(event_offsets: np.ndarray) -> np.ndarray:
    """`[E]` the number of the user's display sets before each event."""
    offsets = np.asarray(event_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    return np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], lengths)


def leave_features(
    logits: tf.Tensor, clicked: tf.Tensor, steps: tf.Tensor, has_no_click: bool
) -> tf.Tensor:
    """`[N, len(FEATURES)]` features of N display sets.

    Args:
      logits: `[N, D + 1]` the behaviour model's choice logits over the display set (padding
        at the model's masked logit) and, last, the no-click option.
      clicked: `[N]` bool, whether the user clicked.
      steps: `[N]` display sets before this one in the session.
      has_no_click: utilities are taken relative to the no-click logit (else as they are).
    """
    utilities = logits[:, :-1]
    if has_no_click:
        utilities -= logits[:, -1:]
    return tf.stack(
        [
            tf.reduce_max(utilities, axis=1),
            tf.reduce_logsumexp(utilities, axis=1),
            tf.cast(clicked, tf.float32),
            tf.math.log1p(tf.cast(steps, tf.float32)),
        ],
        axis=1,
    )


@dataclasses.dataclass(frozen=True)
class LeaveModel:
    """P(leave | features) = sigmoid(((f - mean) / scale) . weights + bias).

    Attributes:
      mean, scale: `[F]` the standardisation (training events).
      weights: `[F]`; bias: the intercept.
      l2: the selected penalty.
      info: what it was fitted on (events, leaves, longest session, log-likelihoods).
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    l2: float = 0.0
    info: dict = dataclasses.field(default_factory=dict)

    def logit(self, features: tf.Tensor) -> tf.Tensor:
        """`[N]` the leave logits of `features [N, F]`."""
        z = (features - tf.constant(self.mean, tf.float32)) / tf.constant(self.scale, tf.float32)
        return tf.linalg.matvec(z, tf.constant(self.weights, tf.float32)) + self.bias

    def probability(self, features: tf.Tensor) -> tf.Tensor:
        """`[N]` P(leave) after each of N display sets."""
        return tf.sigmoid(self.logit(features))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict, source: str = LEAVE_FILE) -> "LeaveModel":
        if values.get("features") != list(FEATURES):
            raise safe_io.DataError(
                f"{source}: features {values.get('features')}, expected {list(FEATURES)}"
            )
        return cls(
            mean=tuple(values["mean"]),
            scale=tuple(values["scale"]),
            weights=tuple(values["weights"]),
            bias=float(values["bias"]),
            l2=float(values.get("l2", 0.0)),
            info=dict(values.get("info", {})),
        )


def log_likelihood(
    features: np.ndarray, label: np.ndarray, weight: np.ndarray, coef: np.ndarray
) -> float:
    """Mean Bernoulli log-likelihood per weighted event of the logistic model `coef`
    (`[F + 1]`, the intercept last) on `features [N, F]`, labels `[N]`, weights `[N]`."""
    x = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    z = x @ coef
    # log sigmoid(z) for label 1, log sigmoid(-z) for label 0, stably.
    ll = -np.logaddexp(0.0, -np.where(label > 0.5, z, -z))
    return float((weight * ll).sum() / max(weight.sum(), 1e-12))


def fit_logistic(
    features: np.ndarray, label: np.ndarray, weight: np.ndarray, l2: float, iterations: int = 100
) -> np.ndarray:
    """Newton's method on the mean weighted log-likelihood less l2 / 2 |w|^2 (the intercept,
    last of the returned `[F + 1]`, unpenalised)."""
    x = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    total = max(weight.sum(), 1e-12)
    coef = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ coef)))
        grad = x.T @ (weight * (p - label)) / total + penalty * coef
        hess = (x * (weight * p * (1 - p))[:, None]).T @ x / total + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        coef -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return coef


def split_features(choice: ChoiceModel, events: EventArrays, batch_users: int = 256) -> np.ndarray:
    """`[E]` x `FEATURES` of every event of `events`, each from the state before it."""
    out = []
    steps = steps_before(events.event_offsets)
    for start in range(0, events.n_users, batch_users):
        rows = np.arange(start, min(start + batch_users, events.n_users))
        batch = events.flat_batch(rows)
        logits = choice.event_logits({k: tf.convert_to_tensor(v) for k, v in batch.items()})
        first, last = events.event_offsets[rows[0]], events.event_offsets[rows[-1] + 1]
        out.append(
            leave_features(
                logits, batch["clicked_pos"] >= 0, steps[first:last], choice.has_no_click
            ).numpy()
        )
    return np.concatenate(out) if out else np.zeros((0, len(FEATURES)), np.float32)


def fit_leave_model(
    choice: ChoiceModel, train: EventArrays, vali: EventArrays, longest: int
) -> LeaveModel | None:
    """The leave model of the training users `train`, its L2 strength selected on `vali`
    (module docstring); None when no training user left (every session censored)."""
    return fit_leave_features(
        {
            name: split_features(choice, events)
            for name, events in (("train", train), ("vali", vali))
        },
        {"train": train.event_offsets, "vali": vali.event_offsets},
        longest,
    )


def fit_leave_features(
    features: dict[str, np.ndarray], event_offsets: dict[str, np.ndarray], longest: int
) -> LeaveModel | None:
    """`fit_leave_model` from the `[E, F]` features and `[U + 1]` event offsets of the
    "train" and "vali" users."""
    data = {}
    for name in ("train", "vali"):
        label, labelled = session_labels(event_offsets[name], longest)
        data[name] = (features[name], label, labelled.astype(np.float64))
    x, y, w = data["train"]
    if not (y * w).sum():
        return None
    mean = (x * w[:, None]).sum(0) / w.sum()
    scale = np.sqrt(((x - mean) ** 2 * w[:, None]).sum(0) / w.sum())
    scale = np.where(scale > 1e-6, scale, 1.0)
    standard = {name: ((f - mean) / scale, y_, w_) for name, (f, y_, w_) in data.items()}
    fits = {l2: fit_logistic(*standard["train"], l2) for l2 in L2_GRID}
    vali_ll = {l2: log_likelihood(*standard["vali"], coef) for l2, coef in fits.items()}
    has_vali = standard["vali"][2].sum() > 0
    best = max(L2_GRID, key=lambda l2: vali_ll[l2]) if has_vali else L2_GRID[0]
    coef = fits[best]
    info = {
        "longest_session": int(longest),
        "train_events": int(w.sum()),
        "train_leaves": int((y * w).sum()),
        "censored_users": int((np.diff(event_offsets["train"]) >= longest).sum()),
        "train_loglik": log_likelihood(*standard["train"], coef),
        "vali_loglik": vali_ll[best] if has_vali else float("nan"),
        "vali_loglik_constant": log_likelihood(
            *standard["vali"], fit_logistic(standard["train"][0] * 0, y, w, 0.0)
        )
        if has_vali
        else float("nan"),
    }
    return LeaveModel(
        tuple(mean.tolist()),
        tuple(scale.tolist()),
        tuple(coef[:-1].tolist()),
        float(coef[-1]),
        float(best),
        info,
    )


def load_leave_model(run_dir: str) -> LeaveModel | None:
    """The leave model of a user-model run folder; None when it has none (or it found no
    leaves: users never leave)."""
    path = os.path.join(run_dir, LEAVE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        values = json.load(f)
    return None if values.get("no_leaves") else LeaveModel.from_dict(values, path)


def ensure_leave_model(run_dir: str, progress: Callable[[str], None] = print) -> LeaveModel | None:
    """Fits the leave model of a finished user-model run folder unless its `leave_model.json`
    is there (written atomically; with no leaves in the logs it says so, and a rerun reuses
    that too)."""
    from ganrl.user_model import load_user_model

    path = os.path.join(run_dir, LEAVE_FILE)
    if os.path.exists(path):
        return load_leave_model(run_dir)
    model = load_user_model(run_dir)
    cfg = model.config
    data = load_run_data(cfg, run_dir)
    longest = max(int(events.events_per_user.max(initial=0)) for events in data.splits.values())
    leave = fit_leave_model(
        model.behavior_choice, data.splits["train"], data.splits["vali"], longest
    )
    if leave is None:
        safe_io.dump_json(path, {"no_leaves": True, "longest_session": longest})
        progress(f"{path}: no session ends before the longest ({longest}): users never leave")
        return None
    safe_io.dump_json(path, leave.to_dict())
    info = leave.info
    progress(
        f"{path}: leave model on {info['train_events']} events ({info['train_leaves']} "
        f"leaves, {info['censored_users']} censored users), l2 {leave.l2:g}, validation "
        f"log-likelihood {info['vali_loglik']:.4f} (constant rate "
        f"{info['vali_loglik_constant']:.4f})"
    )
    return leave
