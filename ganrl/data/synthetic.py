"""A synthetic click log with a known ground-truth user model.

The generator (`SyntheticConfig`; every draw from the seed):
- item vectors v_i ~ N(0, (9 / d) I_d) and item biases b_i ~ N(0, 0.5^2), for i < items;
- a latent taste theta_u ~ N(0, I_d) per user;
- a history effect h_ut from user u's clicks before step t (0 before any), one of
  (`history`): `mean`, beta times the mean of v over all earlier clicks; `lag`, the last L
  clicks weighted by lag, sum_l w_l v_{c(l)} with w_l = beta * decay^(l - 1), l = 1..L, c(l)
  the l-th most recent click (beta = `history_weight`, 1; L = `history_lags`, 3; decay =
  `history_decay`, 0.5);
- utility u_ut(i) = theta_u . v_i + h_ut . v_i + b_i;
- display sets of `min_display`..`max_display` (2..10, uniform) distinct items, drawn
  (`display`): `uniform`; or `popular`, successively without replacement with probability
  proportional to exp(gamma b_i) (gamma = `popularity_strength`, 2): as when a deployed
  recommender shows more of what it expects to be clicked; display shares are log-normal
  (sd of log share gamma * 0.5 = 1), so the top tenth of the catalogue gets about 40% of all
  displays;
- the user picks by a softmax over the displayed items, sampled with Gumbel noise; with
  `always_click` (the released logs' form: exactly one click per display set) there is
  nothing else, without it a no-click option of fixed utility `no_click_utility` (0.5)
  competes too;
- users split 50/25/25 at random.
A world is named `HISTORY_DISPLAY_CLICKS` (`world_settings`): the default,
`lag_popular_always`, is the closest to real logs; `mean_uniform_noclick` is the generator
before worlds had names. Defaults: 2,000 users, 600 items, 8 display sets per user, d = 8.

Models see item ids only: learning what items are alike from the clicks is part of the task.
With `true_vectors_as_features` the item vectors are given as dense side features (columns
`v0..v{d-1}`) beside the one-hot id: that tests the choice model alone, not learning.

The log is written as `NAME.txt` in the released format and read back by the released reader
(shuffling included), so a synthetic dataset goes through the same path as the real ones.
`NAME-truth.npz` then holds `config` (the `SyntheticConfig` as JSON), the latent parameters
`item_vectors [items, d]`, `item_bias [items]`, `user_taste [users, d]` (row = user id), and
for every event in `data_behavior` order (user by user, as in `NAME.pkl`; the item order inside
a display set is the pickle's):
- `event_user [E]` user id, `event_step [E]` step t within the user, `event_split [E]` 0 train,
  1 validation, 2 test, and `event_offsets [U + 1]`, `display [E, D]`, `display_mask [E, D]`,
  `clicked_pos [E]` as in `EventArrays`;
- `true_prob [E, D]`: each displayed item's click probability under the user's real theta (the
  no-click probability is 1 minus the row's sum);
- `bayes_prob [E, D]`: the posterior-predictive probabilities given the user's earlier events
  only: theta's prior N(0, I) reweighted by the likelihood of the user's earlier choices (clicks
  and no-clicks), by self-normalised importance sampling with `posterior_samples` prior draws.
  v, b and the history effect are treated as known; this is the reachable limit of a model
  that sees only the history (the display draw does not depend on theta, so it carries no
  evidence);
- per split `S` in train, vali, test, over the events with a click: `S_oracle_prec1`,
  `S_oracle_prec2` (ranking by `true_prob`, a ceiling no model reaches), `S_bayes_prec1`,
  `S_bayes_prec2` (the reachable limit), `S_chance_prec1`, `S_chance_prec2` (random ranking),
  all with `ganrl.metrics.precision_at_k` (fractional ties).
The reachable limit lies between chance and the oracle (up to sampling noise on small splits).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from typing import Callable

import numpy as np
import pandas as pd

from ganrl.data.convert import Converted
from ganrl.data.dataset import SPLIT_NAMES, ItemFeatures, earlier_clicks
from ganrl.data.released import read_released
from ganrl.data.safe_io import DataError, atomic_open, check_settings, save_npz
from ganrl.metrics import precision_at_k

# Rows of the item-choice draw generated at once (bounds the memory of the draw).
_DRAW_CHUNK = 4096
# Users whose posterior is tracked at once in `ground_truth`.
_USER_CHUNK = 256
CLICK_MODES = {"always": True, "noclick": False}  # world name part -> always_click
DEFAULT_WORLD = "lag_popular_always"


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """The generator's settings (see the module docstring).

    Attributes:
      users: number of users.
      items: catalogue size.
      events_per_user: display sets per user.
      min_display, max_display: display set sizes, drawn uniformly in this range.
      feature_dim: d, the dimension of item vectors and tastes.
      history: the history effect, `mean` or `lag` (`HISTORY_WEIGHTS`).
      history_weight: beta, the weight of the history effect.
      history_lags: L, the clicks a `lag` history looks back on.
      history_decay: the ratio of successive lag weights.
      display: how display sets are drawn, `uniform` or `popular` (`DISPLAY_WEIGHTS`).
      popularity_strength: gamma of the `popular` draw.
      always_click: every display set has exactly one click (no no-click option).
      no_click_utility: the utility of clicking nothing (without `always_click`).
      true_vectors_as_features: give models the item vectors as dense side features.
      posterior_samples: prior draws of the importance sampler.
    """

    users: int = 2000
    items: int = 600
    events_per_user: int = 8
    min_display: int = 2
    max_display: int = 10
    feature_dim: int = 8
    history: str = "lag"
    history_weight: float = 1.0
    history_lags: int = 3
    history_decay: float = 0.5
    display: str = "popular"
    popularity_strength: float = 2.0
    always_click: bool = True
    no_click_utility: float = 0.5
    true_vectors_as_features: bool = False
    posterior_samples: int = 3000

    @property
    def world(self) -> str:
        """The world's name, `HISTORY_DISPLAY_CLICKS` (`world_settings` reads it back)."""
        clicks = "always" if self.always_click else "noclick"
        return f"{self.history}_{self.display}_{clicks}"

    @property
    def no_click_logit(self) -> float:
        """The no-click option's utility; -inf when there is no such option."""
        return -np.inf if self.always_click else self.no_click_utility

    @property
    def history_depth(self) -> int:
        """How many of a user's earlier clicks the history effect reads."""
        return self.history_lags if self.history == "lag" else max(self.events_per_user - 1, 1)

    def lag_weights(self) -> np.ndarray:
        """`[L]` w_l = beta * decay^(l - 1), l = 1..L."""
        return self.history_weight * self.history_decay ** np.arange(self.history_lags)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SyntheticConfig":
        return cls(**json.loads(text))

    def validate(self) -> None:
        """Raises `DataError` naming the first setting out of range and what it needs."""
        c = self
        check_settings(
            self,
            log_shape_checks(self)
            + [
                ("history", c.history in HISTORY_WEIGHTS, f"one of {sorted(HISTORY_WEIGHTS)}"),
                ("history_lags", c.history_lags >= 1, "at least 1"),
                ("display", c.display in DISPLAY_WEIGHTS, f"one of {sorted(DISPLAY_WEIGHTS)}"),
                ("posterior_samples", c.posterior_samples >= 1, "at least 1"),
            ],
        )


def log_shape_checks(c) -> list[tuple[str, bool, str]]:
    """`check_settings` checks of the settings every generator's config shares: users,
    items, events per user, display set sizes and the item vectors' width."""
    return [
        ("users", c.users >= 1, "at least 1"),
        ("items", c.items >= c.max_display, f"at least --max_display ({c.max_display})"),
        ("events_per_user", c.events_per_user >= 1, "at least 1"),
        ("min_display", 1 <= c.min_display, "at least 1"),
        (
            "max_display",
            c.min_display <= c.max_display,
            f"at least --min_display ({c.min_display})",
        ),
        ("feature_dim", c.feature_dim >= 1, "at least 1"),
    ]


def world_settings(world: str) -> dict:
    """The `SyntheticConfig` fields fixed by a world name `HISTORY_DISPLAY_CLICKS`, such as
    `lag_popular_always` -> {"history": "lag", "display": "popular", "always_click": True}.

    Raises:
      DataError: a name that is not three known parts.
    """
    parts = world.split("_")
    if (
        len(parts) != 3
        or parts[0] not in HISTORY_WEIGHTS
        or parts[1] not in DISPLAY_WEIGHTS
        or parts[2] not in CLICK_MODES
    ):
        raise DataError(
            f"--world: {world!r} is not HISTORY_DISPLAY_CLICKS with HISTORY in "
            f"{sorted(HISTORY_WEIGHTS)}, DISPLAY in {sorted(DISPLAY_WEIGHTS)}, "
            f"CLICKS in {sorted(CLICK_MODES)}"
        )
    return {"history": parts[0], "display": parts[1], "always_click": CLICK_MODES[parts[2]]}


def world_names() -> list[str]:
    """Every world name, `HISTORY_DISPLAY_CLICKS`."""
    return [
        "_".join(parts)
        for parts in itertools.product(HISTORY_WEIGHTS, DISPLAY_WEIGHTS, CLICK_MODES)
    ]


def _mean_weights(valid: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    count = np.maximum(valid.sum(axis=-1, keepdims=True), 1)
    return config.history_weight * valid / count


def _lag_weights(valid: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    return config.lag_weights()[: valid.shape[-1]] * valid


# history -> the weights `[..., K]` of a user's earlier clicks (most recent first) in h.
HISTORY_WEIGHTS: dict[str, Callable[[np.ndarray, SyntheticConfig], np.ndarray]] = {
    "mean": _mean_weights,
    "lag": _lag_weights,
}
# display -> the `[items]` draw weights given the biases b.
DISPLAY_WEIGHTS: dict[str, Callable[[SyntheticConfig, np.ndarray], np.ndarray]] = {
    "uniform": lambda config, b: np.ones_like(b),
    "popular": lambda config, b: np.exp(config.popularity_strength * b),
}


def history_effect(v: np.ndarray, earlier: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """The history term h (beta included) of the utility.

    Args:
      v: `[items, d]` item vectors.
      earlier: `[..., K]` a user's earlier clicked items, most recent first, -1 padded.
      config: the world (its `history` and weights).

    Returns:
      `[..., d]` h, 0 without earlier clicks.
    """
    valid = earlier >= 0
    weights = HISTORY_WEIGHTS[config.history](valid, config)
    return np.einsum("...k,...kd->...d", weights, v[np.maximum(earlier, 0)])


def draw_displays(
    rng: np.random.Generator, n: int, weights: np.ndarray, max_display: int
) -> np.ndarray:
    """`[n, max_display]` distinct items per row drawn successively without replacement with
    probability proportional to `weights`, in the order drawn: `[items]` the same for every
    row, or `[n, items]` a row's own.

    The smallest of E_i / w_i over exponential E_i come first (an exponential race); E_i
    grows with the uniform it is made from, so equal weights keep the uniform keys' order.
    """
    display = np.empty((n, max_display), dtype=np.int64)
    for first in range(0, n, _DRAW_CHUNK):
        rows = min(_DRAW_CHUNK, n - first)
        chunk = weights if weights.ndim == 1 else weights[first : first + rows]
        keys = -np.log1p(-rng.random((rows, weights.shape[-1]))) / chunk
        display[first : first + rows] = np.argsort(keys, axis=1)[:, :max_display]
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
    display = draw_displays(rng, n, DISPLAY_WEIGHTS[c.display](c, b), c.max_display)
    mask = np.arange(c.max_display)[None, :] < sizes[:, None]
    user_of = np.repeat(np.arange(c.users), c.events_per_user)
    earlier = np.full((c.users, c.history_depth), -1)  # most recent click first
    clicked = np.full(n, -1)
    gumbel = rng.gumbel(size=(n, c.max_display + 1))
    every_user = np.arange(c.users)
    for t in range(c.events_per_user):  # vectorised over users, one step at a time
        rows = every_user * c.events_per_user + t
        shown = display[rows]
        taste = theta + history_effect(v, earlier, c)
        u = np.einsum("uk,udk->ud", taste, v[shown]) + b[shown]
        u = np.where(mask[rows], u, -np.inf)
        logits = np.concatenate([u, np.full((c.users, 1), c.no_click_logit)], axis=1)
        choice = np.argmax(logits + gumbel[rows], axis=1)
        picked = choice < c.max_display
        clicked[rows] = np.where(picked, choice, -1)
        items_picked = shown[every_user, np.minimum(choice, c.max_display - 1)]
        earlier[picked] = np.concatenate(
            [items_picked[picked][:, None], earlier[picked][:, :-1]], axis=1
        )
    write_released_log(path, display, mask, clicked, user_of, draw_user_splits(rng, c.users))
    return {"v": v, "b": b, "theta": theta}


def draw_user_splits(rng: np.random.Generator, users: int) -> np.ndarray:
    """`[users]` split codes: a random half of the users 0 (train), a quarter 1, the rest 2."""
    split_of_user = np.zeros(users, dtype=np.int64)
    order = rng.permutation(users)
    split_of_user[order[users // 2 : users // 2 + users // 4]] = 1
    split_of_user[order[users // 2 + users // 4 :]] = 2
    return split_of_user


def write_released_log(
    path: str,
    display: np.ndarray,
    mask: np.ndarray,
    clicked: np.ndarray,
    user_of: np.ndarray,
    split_of_user: np.ndarray,
) -> None:
    """Writes display sets as a released-format log (`ganrl.data.released`), atomically.

    Args:
      path: the `.txt` to write.
      display: `[E, D]` displayed items, one row per display set (its `Time` is the row).
      mask: `[E, D]` bool, True on real items.
      clicked: `[E]` slot of the click, -1 for none.
      user_of: `[E]` the user of each display set.
      split_of_user: `[users]` split codes (`draw_user_splits`).
    """
    event_rows, slot = np.nonzero(mask)
    frame = pd.DataFrame(
        {
            "SessionId": user_of[event_rows],
            "Time": event_rows,
            "ItemId": display[mask],
            "is_click": (clicked[event_rows] == slot).astype(np.int64),
            "raw_index": np.arange(len(event_rows)),
            "session_new_index": user_of[event_rows],
            "item_new_index": display[mask],
            "tr_val_tst": split_of_user[user_of[event_rows]],
        }
    )
    with atomic_open(path, "w") as f:
        frame.to_csv(f, sep="\t", index=False)


def choice_probabilities(
    utilities: np.ndarray, mask: np.ndarray, no_click_utility: float
) -> np.ndarray:
    """Softmax over the displayed items and the no-click option.

    Args:
      utilities: `[..., D]` utilities of the displayed items.
      mask: `[..., D]` bool, True on real items.
      no_click_utility: the no-click option's utility (-inf: there is none).

    Returns:
      `[..., D]` click probabilities of the items (0 on padding); 1 minus their sum is the
      no-click probability.
    """
    u = np.where(mask, utilities, -np.inf)
    top = np.maximum(u.max(axis=-1, keepdims=True), no_click_utility)  # stabilising shift
    e = np.exp(u - top)
    return e / (e.sum(axis=-1, keepdims=True) + np.exp(no_click_utility - top))


def base_utilities(
    v: np.ndarray,
    b: np.ndarray,
    display: np.ndarray,
    clicked_item: np.ndarray,
    event_offsets: np.ndarray,
    config: SyntheticConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Each displayed item's vector and its utility without the taste term.

    Args:
      v: `[items, d]` item vectors; b: `[items]` biases.
      display: `[E, D]` displayed items.
      clicked_item: `[E]` clicked item or -1, events grouped by user in time order.
      event_offsets: `[U + 1]` user boundaries.
      config: the world (its history effect).

    Returns:
      `vd [E, D, d]` = v[display] and `base [E, D]` = h . v_i + b_i, h the history effect
      of the user's clicks before each event.
    """
    earlier = earlier_clicks(clicked_item, event_offsets, config.history_depth)
    vd = v[display]
    return vd, np.einsum("ek,edk->ed", history_effect(v, earlier, config), vd) + b[display]


def _posterior_steps(
    vd: np.ndarray,
    base: np.ndarray,
    mask: np.ndarray,
    choice: np.ndarray,
    event_offsets: np.ndarray,
    draws: np.ndarray,
    no_click_utility: float,
):
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
            logits = np.concatenate([u, np.full((len(e), 1, samples), no_click_utility)], axis=1)
            top = logits.max(axis=1, keepdims=True)
            log_p = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            lw = log_w[live - first]
            w = np.exp(lw - lw.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            yield e, w, np.exp(log_p[:, :d_max, :])
            log_w[live - first] = lw + log_p[np.arange(len(e)), choice[e], :]


def posterior_predictive(
    vd: np.ndarray,
    base: np.ndarray,
    mask: np.ndarray,
    choice: np.ndarray,
    event_offsets: np.ndarray,
    draws: np.ndarray,
    no_click_utility: float,
) -> np.ndarray:
    """Click probabilities averaged over theta's posterior given each user's earlier events.

    Args:
      vd: `[E, D, d]` vectors of the displayed items.
      base: `[E, D]` the utility without the taste term (history effect and bias).
      mask: `[E, D]` bool, True on real items.
      choice: `[E]` position of the click, D for no click.
      event_offsets: `[U + 1]` user boundaries (events in time order within a user).
      draws: `[S, d]` samples of theta from its prior.
      no_click_utility: the no-click option's utility (-inf: there is none).

    Returns:
      `[E, D]` posterior-predictive click probabilities: at a user's step t, the mean of the
      choice probabilities over the draws, each weighted by the likelihood of the user's
      choices at steps < t (self-normalised importance sampling).
    """
    out = np.zeros(mask.shape)
    for e, w, p in _posterior_steps(vd, base, mask, choice, event_offsets, draws, no_click_utility):
        out[e] = np.matmul(p, w[:, :, None])[:, :, 0]
    return out


def posterior_mean_taste(
    vd: np.ndarray,
    base: np.ndarray,
    mask: np.ndarray,
    choice: np.ndarray,
    event_offsets: np.ndarray,
    draws: np.ndarray,
    no_click_utility: float,
) -> np.ndarray:
    """`[E, d]` theta's posterior mean given each user's events before each event (the
    arguments are those of `posterior_predictive`). Ranking by theta_mean . v + base is the
    best a model with a single utility per item can do when v and base are known."""
    out = np.zeros((len(mask), draws.shape[1]))
    for e, w, _ in _posterior_steps(vd, base, mask, choice, event_offsets, draws, no_click_utility):
        out[e] = w @ draws
    return out


def ground_truth(converted: Converted, params: dict, config: SyntheticConfig, seed: int) -> dict:
    """The contents of `NAME-truth.npz` (see the module docstring)."""
    ev = converted.events
    v, b, theta = params["v"], params["b"], params["theta"]
    lengths = ev.events_per_user
    user_row = np.repeat(np.arange(ev.n_users), lengths)
    event_user = np.asarray(ev.user_ids)[user_row]
    vd, base = base_utilities(v, b, ev.display, ev.clicked_item, ev.event_offsets, config)
    true_prob = choice_probabilities(
        np.einsum("ek,edk->ed", theta[event_user], vd) + base,
        ev.display_mask,
        config.no_click_logit,
    )
    draws = np.random.default_rng(seed + 1).normal(size=(config.posterior_samples, v.shape[1]))
    choice = np.where(ev.clicked_pos >= 0, ev.clicked_pos, ev.max_display)
    bayes_prob = posterior_predictive(
        vd, base, ev.display_mask, choice, ev.event_offsets, draws, config.no_click_logit
    )
    split_of_row = np.zeros(ev.n_users, dtype=np.int64)
    for code, split in enumerate(SPLIT_NAMES):
        split_of_row[converted.user_rows[split]] = code
    event_split = split_of_row[user_row]
    out = {
        "config": config.to_json(),
        "item_vectors": v,
        "item_bias": b,
        "user_taste": theta,
        "event_user": event_user,
        "event_step": np.arange(ev.n_events) - np.repeat(ev.event_offsets[:-1], lengths),
        "event_split": event_split,
        "event_offsets": ev.event_offsets,
        "display": ev.display,
        "display_mask": ev.display_mask,
        "clicked_pos": ev.clicked_pos,
        "true_prob": true_prob,
        "bayes_prob": bayes_prob,
    }
    scorers = {"oracle": true_prob, "bayes": bayes_prob, "chance": np.zeros_like(true_prob)}
    for code, split in enumerate(SPLIT_NAMES):
        sel = (event_split == code) & (ev.clicked_pos >= 0)
        for scorer, scores in scorers.items():
            for k in (1, 2):
                values = precision_at_k(scores[sel], ev.display_mask[sel], ev.clicked_pos[sel], k)
                out[f"{split}_{scorer}_prec{k}"] = float(values.mean()) if sel.any() else np.nan
    return out


def make_synthetic(
    data_folder: str, name: str, seed: int, config: SyntheticConfig = SyntheticConfig()
) -> tuple[Converted, dict]:
    """Generates `NAME.txt` in `data_folder`, converts it and computes the ground truth.

    Returns:
      The converted dataset (item features: the one-hot id, and the item vectors with
      `config.true_vectors_as_features`) and the contents of `NAME-truth.npz`.
    """
    config.validate()
    path = os.path.join(data_folder, name + ".txt")
    params = generate_log(path, config, seed)
    converted = read_released(path, name, seed)
    if converted.dataset.n_items != config.items:  # an item never displayed
        converted = with_catalogue(converted, config.items)
    features = ItemFeatures(n_items=config.items, identity=True)
    if config.true_vectors_as_features:
        features = ItemFeatures(
            n_items=config.items,
            identity=True,
            dense=params["v"].astype(np.float32),
            columns=tuple(f"v{k}" for k in range(config.feature_dim)),
        )
    converted.dataset.item_features = features
    converted.stats["feature_dim"] = features.feature_dim
    return converted, ground_truth(converted, params, config, seed)


def with_catalogue(converted: Converted, n_items: int) -> Converted:
    """`converted` with the catalogue size set to `n_items` (the released reader infers it
    from the largest displayed id)."""
    converted.events.n_items = n_items
    converted.stats["items"] = n_items
    return converted


def truth_summary(truth: dict) -> dict:
    """The per-split limits of a truth dict (its scalar numbers)."""
    return {
        k: float(v)
        for k, v in truth.items()
        if np.ndim(v) == 0 and np.issubdtype(np.asarray(v).dtype, np.number)
    }


def load_truth(path: str) -> tuple[SyntheticConfig, dict]:
    """Reads `NAME-truth.npz`: the world's config and the arrays (`ground_truth`). A file
    written before worlds had names holds no config: its world is `mean_uniform_noclick`."""
    with np.load(path, allow_pickle=False) as f:
        truth = {k: f[k] for k in f.files}
    if "config" not in truth:
        return SyntheticConfig(**world_settings("mean_uniform_noclick")), truth
    return SyntheticConfig.from_json(str(truth.pop("config"))), truth


def save_truth(path: str, truth: dict) -> None:
    """Writes `NAME-truth.npz` atomically."""
    save_npz(path, **{k: np.asarray(v) for k, v in truth.items()})
