"""A synthetic click log with a known ground-truth user model.

The generator (all draws from the seed):
- item vectors v_i ~ N(0, I_d / d) * 3 and item biases b_i ~ N(0, 0.5^2), i < n_items;
- a latent taste theta_u ~ N(0, I_d) per user;
- a history effect: h_t = mean of v over the user's clicks before step t (0 before any);
- utility u_t(i) = theta_u . v_i + beta * h_t . v_i + b_i with beta = 1;
- display sets of 2..max_display distinct items drawn uniformly; the user picks by a softmax
  over the displayed items plus a no-click option of utility `no_click_utility` (0.5).
The item vectors are given to the model as dense side features (with the one-hot id). The
log is written in the released format (so it goes through the same reader, shuffling and
all), and `NAME-truth.npz` holds, for the events in `data_behavior` order:
- `event_offsets`, `display`, `display_mask`, `clicked_pos` (as `EventArrays`);
- `true_prob [E, D]`: the click probabilities under the user's real theta (the oracle);
- `bayes_prob [E, D]`: the posterior-predictive probabilities given the user's earlier events
  only (importance sampling from theta's prior, `posterior_samples` draws): the reachable
  limit of any model that sees only the history;
- per split (`train_`, `vali_`, `test_`): `oracle_prec1`, `bayes_prec1`, `bayes_prec2`,
  `chance_prec1`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ganrl.data.convert import Converted
from ganrl.data.dataset import ItemFeatures
from ganrl.data.released import read_released
from ganrl.data.safe_io import atomic_open, save_npz
from ganrl.metrics import precision_at_k

BETA = 1.0
NO_CLICK_UTILITY = 0.5


def generate_log(path: str, users: int, items: int, events_per_user: int, max_display: int,
                 feature_dim: int, seed: int) -> dict:
    """Writes a released-format log to `path`; returns the latent parameters."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(items, feature_dim)) * 3.0 / np.sqrt(feature_dim)
    b = rng.normal(scale=0.5, size=items)
    theta = rng.normal(size=(users, feature_dim))
    n = users * events_per_user
    sizes = rng.integers(2, max_display + 1, n)
    # Distinct items per display set: the first `size` of a random ranking of all items.
    keys = rng.random((n, items))
    display = np.argsort(keys, axis=1)[:, :max_display]
    mask = np.arange(max_display)[None, :] < sizes[:, None]
    user_of = np.repeat(np.arange(users), events_per_user)
    history_sum = np.zeros((users, feature_dim))
    history_count = np.zeros(users)
    clicked = np.full(n, -1)
    gumbel = rng.gumbel(size=(n, max_display + 1))
    for t in range(events_per_user):  # vectorised over users, one step at a time
        rows = np.arange(users) * events_per_user + t
        h = history_sum / np.maximum(history_count, 1)[:, None]
        d = display[rows]
        u = (np.einsum("uk,udk->ud", theta + BETA * h, v[d]) + b[d])
        u = np.where(mask[rows], u, -np.inf)
        logits = np.concatenate([u, np.full((users, 1), NO_CLICK_UTILITY)], axis=1)
        choice = np.argmax(logits + gumbel[rows], axis=1)
        picked = choice < max_display
        clicked[rows] = np.where(picked, choice, -1)
        items_picked = d[np.arange(users), np.minimum(choice, max_display - 1)]
        history_sum[picked] += v[items_picked[picked]]
        history_count[picked] += 1
    split_of_user = np.zeros(users, dtype=np.int64)
    order = rng.permutation(users)
    split_of_user[order[users // 2: users // 2 + users // 4]] = 1
    split_of_user[order[users // 2 + users // 4:]] = 2
    event_rows, slot = np.nonzero(mask)
    frame = pd.DataFrame({
        "SessionId": user_of[event_rows], "Time": event_rows, "ItemId": display[mask],
        "is_click": (clicked[event_rows] == slot).astype(np.int64),
        "raw_index": np.arange(len(event_rows)), "session_new_index": user_of[event_rows],
        "item_new_index": display[mask], "tr_val_tst": split_of_user[user_of[event_rows]]})
    with atomic_open(path, "w") as f:
        frame.to_csv(f, sep="\t", index=False)
    return {"v": v, "b": b, "theta": theta}


def choice_probabilities(utilities: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`[..., D]` utilities -> `[..., D]` probabilities of the items (no-click excluded)."""
    u = np.where(mask, utilities, -np.inf)
    top = np.maximum(u.max(axis=-1, keepdims=True), NO_CLICK_UTILITY)
    e = np.exp(u - top)
    z = e.sum(axis=-1, keepdims=True) + np.exp(NO_CLICK_UTILITY - top)
    return e / z


def ground_truth(converted: Converted, params: dict, samples: int, seed: int) -> dict:
    """Oracle and posterior-predictive probabilities of every event (see module docstring)."""
    ev = converted.events
    v, b, theta = params["v"], params["b"], params["theta"]
    n, d_max = ev.display.shape
    user_row = np.repeat(np.arange(ev.n_users), ev.events_per_user)
    user_id = np.asarray(ev.user_ids)[user_row]
    # History mean before each event, within its user.
    clicked_item = ev.clicked_item
    contrib = np.where((clicked_item >= 0)[:, None], v[np.maximum(clicked_item, 0)], 0.0)
    csum = np.cumsum(contrib, axis=0)
    ccount = np.cumsum(clicked_item >= 0)
    start = ev.event_offsets[user_row]
    before_sum = csum - contrib - np.where((start > 0)[:, None], csum[start - 1], 0.0)
    before_count = (ccount - (clicked_item >= 0)
                    - np.where(start > 0, ccount[np.maximum(start - 1, 0)], 0))
    h = before_sum / np.maximum(before_count, 1)[:, None]
    vd = v[ev.display]  # [E, D, k]
    base = BETA * np.einsum("ek,edk->ed", h, vd) + b[ev.display]
    true_prob = choice_probabilities(np.einsum("ek,edk->ed", theta[user_id], vd) + base,
                                     ev.display_mask)
    # Posterior predictive by self-normalised importance sampling from the prior.
    rng = np.random.default_rng(seed + 1)
    draws = rng.normal(size=(samples, v.shape[1]))
    bayes_prob = np.zeros_like(true_prob)
    target = np.where(ev.clicked_pos >= 0, ev.clicked_pos, d_max)
    step = np.arange(n) - start  # index of each event within its user
    lengths = ev.events_per_user
    for first in range(0, ev.n_users, 256):  # users in chunks; steps vectorised over them
        users = np.arange(first, min(first + 256, ev.n_users))
        log_w = np.zeros((len(users), samples))
        for t in range(int(lengths[users].max())):
            live = users[lengths[users] > t]
            e = ev.event_offsets[live] + t
            u = np.matmul(vd[e], draws.T) + base[e][:, :, None]  # [E, D, S]
            u = np.where(ev.display_mask[e][:, :, None], u, -np.inf)
            logits = np.concatenate([u, np.full((len(e), 1, samples), NO_CLICK_UTILITY)],
                                    axis=1)
            top = logits.max(axis=1, keepdims=True)
            log_p = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            lw = log_w[live - first]
            w = np.exp(lw - lw.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            bayes_prob[e] = np.matmul(np.exp(log_p[:, :d_max, :]), w[:, :, None])[:, :, 0]
            log_w[live - first] = lw + log_p[np.arange(len(e)), target[e], :]
    out = {"event_offsets": ev.event_offsets, "display": ev.display,
           "display_mask": ev.display_mask, "clicked_pos": ev.clicked_pos,
           "true_prob": true_prob, "bayes_prob": bayes_prob}
    for split, rows in converted.user_rows.items():
        sel = np.zeros(n, dtype=bool)
        for r in rows:
            sel[ev.event_offsets[r]:ev.event_offsets[r + 1]] = True
        sel &= ev.clicked_pos >= 0
        args = (ev.display_mask[sel], ev.clicked_pos[sel])
        out[f"{split}_oracle_prec1"] = np.nanmean(precision_at_k(true_prob[sel], *args, 1))
        out[f"{split}_bayes_prec1"] = np.nanmean(precision_at_k(bayes_prob[sel], *args, 1))
        out[f"{split}_bayes_prec2"] = np.nanmean(precision_at_k(bayes_prob[sel], *args, 2))
        out[f"{split}_chance_prec1"] = float(np.mean(1.0 / ev.display_mask[sel].sum(axis=1)))
    return out


def make_synthetic(data_folder: str, name: str, seed: int, users: int = 2000,
                   items: int = 600, events_per_user: int = 8, max_display: int = 10,
                   feature_dim: int = 8, posterior_samples: int = 3000
                   ) -> tuple[Converted, dict]:
    """Generates the log `NAME.txt`, converts it and computes the truth."""
    path = os.path.join(data_folder, name + ".txt")
    params = generate_log(path, users, items, events_per_user, max_display, feature_dim, seed)
    converted = read_released(path, name, seed)
    features = ItemFeatures(n_items=items, identity=True, dense=params["v"].astype(np.float32),
                            columns=tuple(f"v{k}" for k in range(feature_dim)))
    converted.dataset.item_features = features
    converted.stats["feature_dim"] = features.feature_dim
    truth = ground_truth(converted, params, posterior_samples, seed)
    return converted, truth


def save_truth(path: str, truth: dict) -> None:
    save_npz(path, **{k: np.asarray(v) for k, v in truth.items()})
