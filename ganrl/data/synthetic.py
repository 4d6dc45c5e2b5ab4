"""A synthetic click log with a known ground-truth user model.

The generator (`SyntheticConfig`; every draw from the seed):
- item vectors v_i ~ N(0, (9 / d) I_d) and item biases b_i ~ N(0, 0.5^2), for i < items;
- a latent taste theta_u ~ N(0, I_d) per user;
- a history effect: h_ut = the mean of v over user u's clicks before step t (0 before any);
- utility u_ut(i) = theta_u . v_i + beta * h_ut . v_i + b_i (beta = `history_weight`, 1);
- display sets of `min_display`..`max_display` (2..10) distinct items drawn uniformly; the user
  picks by a softmax over the displayed items plus a no-click option of fixed utility
  `no_click_utility` (0.5), sampled with Gumbel noise;
- users split 50/25/25 at random.
Defaults: 2,000 users, 600 items, 8 display sets per user, d = 8. The item vectors are given to
models as dense side features (columns `v0..v{d-1}`) beside the one-hot id.

The log is written as `NAME.txt` in the released format and read back by the released reader
(shuffling included), so a synthetic dataset goes through the same path as the real ones.
`NAME-truth.npz` then holds the latent parameters `item_vectors [items, d]`, `item_bias
[items]`, `user_taste [users, d]` (row = user id), and for every event in `data_behavior` order
(user by user, as in `NAME.pkl`; the item order inside a display set is the pickle's):
- `event_user [E]` user id, `event_step [E]` step t within the user, `event_split [E]` 0 train,
  1 validation, 2 test, and `event_offsets [U + 1]`, `display [E, D]`, `display_mask [E, D]`,
  `clicked_pos [E]` as in `EventArrays`;
- `true_prob [E, D]`: each displayed item's click probability under the user's real theta (the
  no-click probability is 1 minus the row's sum);
- `bayes_prob [E, D]`: the posterior-predictive probabilities given the user's earlier events
  only: theta's prior N(0, I) reweighted by the likelihood of the user's earlier choices (clicks
  and no-clicks), by self-normalised importance sampling with `posterior_samples` prior draws.
  v, b and beta are treated as known; this is the reachable limit of a model that sees only the
  history;
- per split `S` in train, vali, test, over the events with a click: `S_oracle_prec1`,
  `S_oracle_prec2` (ranking by `true_prob`, a ceiling no model reaches), `S_bayes_prec1`,
  `S_bayes_prec2` (the reachable limit), `S_chance_prec1`, `S_chance_prec2` (random ranking),
  all with `ganrl.metrics.precision_at_k` (fractional ties).
The reachable limit lies between chance and the oracle (up to sampling noise on small splits).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from ganrl.data.convert import Converted
from ganrl.data.dataset import SPLIT_NAMES, ItemFeatures
from ganrl.data.released import read_released
from ganrl.data.safe_io import DataError, atomic_open, save_npz
from ganrl.metrics import precision_at_k

# Rows of the item-choice draw generated at once (bounds the memory of the draw).
_DRAW_CHUNK = 4096
# Users whose posterior is tracked at once in `ground_truth`.
_USER_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The generator's settings (see the module docstring).

    Attributes:
      users: number of users.
      items: catalogue size.
      events_per_user: display sets per user.
      min_display, max_display: display set sizes, drawn uniformly in this range.
      feature_dim: d, the dimension of item vectors and tastes.
      history_weight: beta, the weight of the history effect.
      no_click_utility: the utility of clicking nothing.
      posterior_samples: prior draws of the importance sampler.
    """

    users: int = 2000
    items: int = 600
    events_per_user: int = 8
    min_display: int = 2
    max_display: int = 10
    feature_dim: int = 8
    history_weight: float = 1.0
    no_click_utility: float = 0.5
    posterior_samples: int = 3000

    def validate(self) -> None:
        """Raises `DataError` naming the first setting out of range."""
        checks = [("users", self.users >= 1), ("items", self.items >= self.max_display),
                  ("events_per_user", self.events_per_user >= 1),
                  ("min_display", 1 <= self.min_display <= self.max_display),
                  ("feature_dim", self.feature_dim >= 1),
                  ("posterior_samples", self.posterior_samples >= 1)]
        for flag, ok in checks:
            if not ok:
                raise DataError(f"--{flag}: {getattr(self, flag)} is out of range (need users, "
                                "events_per_user, feature_dim, posterior_samples >= 1, "
                                "1 <= min_display <= max_display <= items)")


def draw_displays(rng: np.random.Generator, n: int, items: int, max_display: int
                  ) -> np.ndarray:
    """`[n, max_display]` distinct uniformly drawn items per row, in a random order."""
    display = np.empty((n, max_display), dtype=np.int64)
    for first in range(0, n, _DRAW_CHUNK):
        keys = rng.random((min(_DRAW_CHUNK, n - first), items))
        display[first:first + len(keys)] = np.argsort(keys, axis=1)[:, :max_display]
    return display


def generate_log(path: str, config: SyntheticConfig, seed: int) -> dict:
    """Writes a released-format log to `path`; returns the latent parameters.

    Returns:
      {"v": `[items, d]` item vectors, "b": `[items]` biases, "theta": `[users, d]` tastes}.
    """
    c = config
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(c.items, c.feature_dim)) * 3.0 / np.sqrt(c.feature_dim)
    b = rng.normal(scale=0.5, size=c.items)
    theta = rng.normal(size=(c.users, c.feature_dim))
    n = c.users * c.events_per_user
    sizes = rng.integers(c.min_display, c.max_display + 1, n)
    display = draw_displays(rng, n, c.items, c.max_display)
    mask = np.arange(c.max_display)[None, :] < sizes[:, None]
    user_of = np.repeat(np.arange(c.users), c.events_per_user)
    history_sum = np.zeros((c.users, c.feature_dim))
    history_count = np.zeros(c.users)
    clicked = np.full(n, -1)
    gumbel = rng.gumbel(size=(n, c.max_display + 1))
    every_user = np.arange(c.users)
    for t in range(c.events_per_user):  # vectorised over users, one step at a time
        rows = every_user * c.events_per_user + t
        h = history_sum / np.maximum(history_count, 1)[:, None]
        shown = display[rows]
        u = np.einsum("uk,udk->ud", theta + c.history_weight * h, v[shown]) + b[shown]
        u = np.where(mask[rows], u, -np.inf)
        logits = np.concatenate([u, np.full((c.users, 1), c.no_click_utility)], axis=1)
        choice = np.argmax(logits + gumbel[rows], axis=1)
        picked = choice < c.max_display
        clicked[rows] = np.where(picked, choice, -1)
        items_picked = shown[every_user, np.minimum(choice, c.max_display - 1)]
        history_sum[picked] += v[items_picked[picked]]
        history_count[picked] += 1
    split_of_user = np.zeros(c.users, dtype=np.int64)
    order = rng.permutation(c.users)
    split_of_user[order[c.users // 2: c.users // 2 + c.users // 4]] = 1
    split_of_user[order[c.users // 2 + c.users // 4:]] = 2
    event_rows, slot = np.nonzero(mask)
    frame = pd.DataFrame({
        "SessionId": user_of[event_rows], "Time": event_rows, "ItemId": display[mask],
        "is_click": (clicked[event_rows] == slot).astype(np.int64),
        "raw_index": np.arange(len(event_rows)), "session_new_index": user_of[event_rows],
        "item_new_index": display[mask], "tr_val_tst": split_of_user[user_of[event_rows]]})
    with atomic_open(path, "w") as f:
        frame.to_csv(f, sep="\t", index=False)
    return {"v": v, "b": b, "theta": theta}


def choice_probabilities(utilities: np.ndarray, mask: np.ndarray, no_click_utility: float
                         ) -> np.ndarray:
    """Softmax over the displayed items and the no-click option.

    Args:
      utilities: `[..., D]` utilities of the displayed items.
      mask: `[..., D]` bool, True on real items.
      no_click_utility: the no-click option's utility.

    Returns:
      `[..., D]` click probabilities of the items (0 on padding); 1 minus their sum is the
      no-click probability.
    """
    u = np.where(mask, utilities, -np.inf)
    top = np.maximum(u.max(axis=-1, keepdims=True), no_click_utility)  # stabilising shift
    e = np.exp(u - top)
    return e / (e.sum(axis=-1, keepdims=True) + np.exp(no_click_utility - top))


def history_means(v: np.ndarray, clicked_item: np.ndarray, event_offsets: np.ndarray
                  ) -> np.ndarray:
    """`[E, d]` the mean item vector of each event's user's clicks before it (0 before any).

    Args:
      v: `[items, d]` item vectors.
      clicked_item: `[E]` clicked item or -1, events grouped by user in time order.
      event_offsets: `[U + 1]` user boundaries.
    """
    clicked = clicked_item >= 0
    contribution = np.where(clicked[:, None], v[np.maximum(clicked_item, 0)], 0.0)
    lengths = np.diff(event_offsets)
    start = np.repeat(event_offsets[:-1], lengths)
    total = np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(contribution, axis=0)])
    count = np.concatenate([[0], np.cumsum(clicked)])
    before_sum = total[:-1] - total[start]  # events start..e-1 of the same user
    before_count = count[:-1] - count[start]
    return before_sum / np.maximum(before_count, 1)[:, None]


def _posterior_steps(vd: np.ndarray, base: np.ndarray, mask: np.ndarray, choice: np.ndarray,
                     event_offsets: np.ndarray, draws: np.ndarray, no_click_utility: float):
    """Walks every user's events in time order, a chunk of users at a time, and yields
    `(e, w, p)` per step: the events `e [n]` at that step, the normalised importance weights
    `w [n, S]` of the draws given each user's earlier choices, and the choice probabilities
    `p [n, D, S]` of the displayed items under each draw (the arguments are those of
    `posterior_predictive`)."""
    n_users = len(event_offsets) - 1
    lengths = np.diff(event_offsets)
    d_max, samples = mask.shape[1], len(draws)
    for first in range(0, n_users, _USER_CHUNK):  # steps vectorised over a chunk of users
        users = np.arange(first, min(first + _USER_CHUNK, n_users))
        log_w = np.zeros((len(users), samples))
        for t in range(int(lengths[users].max())):
            live = users[lengths[users] > t]
            e = event_offsets[live] + t
            u = np.matmul(vd[e], draws.T) + base[e][:, :, None]  # [e, D, S]
            u = np.where(mask[e][:, :, None], u, -np.inf)
            logits = np.concatenate([u, np.full((len(e), 1, samples), no_click_utility)],
                                    axis=1)
            top = logits.max(axis=1, keepdims=True)
            log_p = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            lw = log_w[live - first]
            w = np.exp(lw - lw.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            yield e, w, np.exp(log_p[:, :d_max, :])
            log_w[live - first] = lw + log_p[np.arange(len(e)), choice[e], :]


def posterior_predictive(vd: np.ndarray, base: np.ndarray, mask: np.ndarray,
                         choice: np.ndarray, event_offsets: np.ndarray, draws: np.ndarray,
                         no_click_utility: float) -> np.ndarray:
    """Click probabilities averaged over theta's posterior given each user's earlier events.

    Args:
      vd: `[E, D, d]` vectors of the displayed items.
      base: `[E, D]` the utility without the taste term (history effect and bias).
      mask: `[E, D]` bool, True on real items.
      choice: `[E]` position of the click, D for no click.
      event_offsets: `[U + 1]` user boundaries (events in time order within a user).
      draws: `[S, d]` samples of theta from its prior.
      no_click_utility: the no-click option's utility.

    Returns:
      `[E, D]` posterior-predictive click probabilities: at a user's step t, the mean of the
      choice probabilities over the draws, each weighted by the likelihood of the user's
      choices at steps < t (self-normalised importance sampling).
    """
    out = np.zeros(mask.shape)
    for e, w, p in _posterior_steps(vd, base, mask, choice, event_offsets, draws,
                                    no_click_utility):
        out[e] = np.matmul(p, w[:, :, None])[:, :, 0]
    return out


def posterior_mean_taste(vd: np.ndarray, base: np.ndarray, mask: np.ndarray,
                         choice: np.ndarray, event_offsets: np.ndarray, draws: np.ndarray,
                         no_click_utility: float) -> np.ndarray:
    """`[E, d]` theta's posterior mean given each user's events before each event (the
    arguments are those of `posterior_predictive`). Ranking by theta_mean . v + base is the
    best a model with a single utility per item can do when v and base are known."""
    out = np.zeros((len(mask), draws.shape[1]))
    for e, w, _ in _posterior_steps(vd, base, mask, choice, event_offsets, draws,
                                    no_click_utility):
        out[e] = w @ draws
    return out


def ground_truth(converted: Converted, params: dict, config: SyntheticConfig, seed: int
                 ) -> dict:
    """The contents of `NAME-truth.npz` (see the module docstring)."""
    ev = converted.events
    v, b, theta = params["v"], params["b"], params["theta"]
    lengths = ev.events_per_user
    user_row = np.repeat(np.arange(ev.n_users), lengths)
    event_user = np.asarray(ev.user_ids)[user_row]
    h = history_means(v, ev.clicked_item, ev.event_offsets)
    vd = v[ev.display]  # [E, D, d]
    base = config.history_weight * np.einsum("ek,edk->ed", h, vd) + b[ev.display]
    true_prob = choice_probabilities(np.einsum("ek,edk->ed", theta[event_user], vd) + base,
                                     ev.display_mask, config.no_click_utility)
    draws = np.random.default_rng(seed + 1).normal(size=(config.posterior_samples,
                                                         v.shape[1]))
    choice = np.where(ev.clicked_pos >= 0, ev.clicked_pos, ev.max_display)
    bayes_prob = posterior_predictive(vd, base, ev.display_mask, choice, ev.event_offsets,
                                      draws, config.no_click_utility)
    split_of_row = np.zeros(ev.n_users, dtype=np.int64)
    for code, split in enumerate(SPLIT_NAMES):
        split_of_row[converted.user_rows[split]] = code
    event_split = split_of_row[user_row]
    out = {"item_vectors": v, "item_bias": b, "user_taste": theta,
           "event_user": event_user, "event_step": np.arange(ev.n_events) - np.repeat(
               ev.event_offsets[:-1], lengths), "event_split": event_split,
           "event_offsets": ev.event_offsets, "display": ev.display,
           "display_mask": ev.display_mask, "clicked_pos": ev.clicked_pos,
           "true_prob": true_prob, "bayes_prob": bayes_prob}
    scorers = {"oracle": true_prob, "bayes": bayes_prob, "chance": np.zeros_like(true_prob)}
    for code, split in enumerate(SPLIT_NAMES):
        sel = (event_split == code) & (ev.clicked_pos >= 0)
        for scorer, scores in scorers.items():
            for k in (1, 2):
                values = precision_at_k(scores[sel], ev.display_mask[sel], ev.clicked_pos[sel],
                                        k)
                out[f"{split}_{scorer}_prec{k}"] = float(values.mean()) if sel.any() else np.nan
    return out


def make_synthetic(data_folder: str, name: str, seed: int,
                   config: SyntheticConfig = SyntheticConfig()) -> tuple[Converted, dict]:
    """Generates `NAME.txt` in `data_folder`, converts it and computes the ground truth.

    Returns:
      The converted dataset (item features: one-hot id and the item vectors) and the contents
      of `NAME-truth.npz`.
    """
    config.validate()
    path = os.path.join(data_folder, name + ".txt")
    params = generate_log(path, config, seed)
    converted = read_released(path, name, seed)
    if converted.dataset.n_items != config.items:  # an item never displayed
        converted = _with_catalogue(converted, config.items)
    features = ItemFeatures(n_items=config.items, identity=True,
                            dense=params["v"].astype(np.float32),
                            columns=tuple(f"v{k}" for k in range(config.feature_dim)))
    converted.dataset.item_features = features
    converted.stats["feature_dim"] = features.feature_dim
    return converted, ground_truth(converted, params, config, seed)


def _with_catalogue(converted: Converted, n_items: int) -> Converted:
    """`converted` with the catalogue size set to `n_items` (the released reader infers it
    from the largest displayed id)."""
    converted.events.n_items = n_items
    converted.stats["items"] = n_items
    return converted


def truth_summary(truth: dict) -> dict:
    """The per-split limits of a truth dict (its scalar entries)."""
    return {k: float(v) for k, v in truth.items() if np.ndim(v) == 0}


def save_truth(path: str, truth: dict) -> None:
    """Writes `NAME-truth.npz` atomically."""
    save_npz(path, **{k: np.asarray(v) for k, v in truth.items()})
