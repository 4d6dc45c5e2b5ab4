"""Ground-truth worlds as batched environments of new users (the "real" side of sim-to-real).

A `TrueEnvironment` draws new users from its world's prior at `reset`, takes slates of item
ids chosen among the whole catalogue, and answers with the true model's click and reward.
Everything is vectorised over users; the random stream is a function of the reset's seed
alone and each step draws the same amounts whatever the slates (tastes first, then per step
`[U, k + 1]` Gumbel noise and `[U]` leave uniforms), so two policies evaluated with the same
seed meet the same users and the same noise (common random numbers).

Worlds (`load_true_env` reads them from a dataset's `NAME-truth.npz`):
- `SyntheticEnvironment`: `ganrl.data.synthetic`'s world (default `lag_popular_always`):
  utility (theta + h) . v_i + b_i, a softmax choice (with a no-click option in `noclick`
  worlds); reward `utility` (the true utility of the clicked item, 0 without a click: in an
  always-click world every step has a click, so counting clicks says nothing) or `click`;
  no user leaves.
- `SatiationEnvironment`: `ganrl.data.satiation`'s world; reward `click` (one per click) over
  the session, which ends when the user leaves.
"""

from __future__ import annotations

import abc
from typing import NamedTuple

import numpy as np

from ganrl.data import satiation
from ganrl.data.synthetic import SyntheticConfig, history_effect, load_truth

REWARDS = ("utility", "click")


class TrueStep(NamedTuple):
    """reward `[U]` (0 for users already gone), clicked_index `[U]` (slate position, -1 for
    none), clicked_item `[U]` (-1 for none) and active `[U]` bool (still there afterwards)."""

    reward: np.ndarray
    clicked_index: np.ndarray
    clicked_item: np.ndarray
    active: np.ndarray


class TrueEnvironment(abc.ABC):
    """New users of a ground-truth world, served slates of k items (see the module
    docstring)."""

    n_items: int
    reward_kind: str = "click"
    no_click_utility: float = -np.inf

    def reset(self, users: int, seed: int) -> None:
        """Starts `users` new users drawn from the prior with the stream of `seed`."""
        self.rng = np.random.default_rng(seed)
        self.active = np.ones(users, dtype=bool)
        self._start(users)

    @abc.abstractmethod
    def _start(self, users: int) -> None:
        """Draws the users' latent state (from `self.rng`, first)."""

    @abc.abstractmethod
    def utilities(self, items: np.ndarray | None = None) -> np.ndarray:
        """`[U, n]` true utilities of `items [U, n]` (default: every item) now."""

    @abc.abstractmethod
    def _after(self, slate: np.ndarray, choice: np.ndarray, leave_draw: np.ndarray) -> np.ndarray:
        """Updates the users' state after `slate` and the choices `[U]` (k: none); returns
        `[U]` bool, who leaves."""

    def click_probabilities(self, slate: np.ndarray) -> np.ndarray:
        """`[U, k + 1]` the true model's choice probabilities over `slate [U, k]` and no
        click (last column)."""
        logits = np.concatenate(
            [self.utilities(slate), np.full((len(slate), 1), self.no_click_utility)], axis=1
        )
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def leave_probabilities(self, slate: np.ndarray) -> np.ndarray:
        """`[U]` each user's true probability of leaving after `slate [U, k]` now (0 in a
        world where nobody leaves)."""
        return np.zeros(len(slate))

    def step(self, slate: np.ndarray) -> TrueStep:
        """Shows `slate [U, k]` (item ids, no repeats) to every user still there."""
        slate = np.asarray(slate, dtype=np.int64)
        users, k = slate.shape
        gumbel = self.rng.gumbel(size=(users, k + 1))
        leave_draw = self.rng.random(users)
        u = self.utilities(slate)
        logits = np.concatenate([u, np.full((users, 1), self.no_click_utility)], axis=1)
        choice = np.argmax(logits + gumbel, axis=1)
        was_active = self.active
        clicked = (choice < k) & was_active
        rows = np.arange(users)
        if self.reward_kind == "utility":
            reward = np.where(clicked, u[rows, np.minimum(choice, k - 1)], 0.0)
        else:
            reward = clicked.astype(np.float64)
        leaves = self._after(slate, np.where(was_active, choice, k), leave_draw)
        self.active = was_active & ~leaves
        return TrueStep(
            reward,
            np.where(clicked, choice, -1),
            np.where(clicked, slate[rows, np.minimum(choice, k - 1)], -1),
            self.active.copy(),
        )


class SyntheticEnvironment(TrueEnvironment):
    """`ganrl.data.synthetic`'s world (module docstring)."""

    def __init__(
        self,
        config: SyntheticConfig,
        item_vectors: np.ndarray,
        item_bias: np.ndarray,
        reward: str = "utility",
    ):
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r}: expected one of {REWARDS}")
        self.config = config
        self.v, self.b = item_vectors, item_bias
        self.n_items = len(item_bias)
        self.reward_kind = reward
        self.no_click_utility = config.no_click_logit

    def _start(self, users: int) -> None:
        self.theta = self.rng.normal(size=(users, self.config.feature_dim))
        self.earlier = np.full((users, self.config.history_depth), -1)

    def utilities(self, items: np.ndarray | None = None) -> np.ndarray:
        taste = self.theta + history_effect(self.v, self.earlier, self.config)
        if items is None:
            return taste @ self.v.T + self.b[None, :]
        return np.einsum("ud,und->un", taste, self.v[items]) + self.b[items]

    def _after(self, slate, choice, leave_draw):
        k = slate.shape[1]
        picked = choice < k
        item = slate[np.arange(len(slate)), np.minimum(choice, k - 1)]
        earlier = self.earlier
        if self.config.history == "mean" and np.any(picked & (earlier[:, -1] >= 0)):
            # The mean is over ALL earlier clicks; `history_depth` holds the logs' longest
            # history, which a session longer than the logs' outgrows: widen, drop none.
            earlier = np.concatenate([earlier, np.full((len(earlier), 1), -1)], axis=1)
        shifted = np.concatenate([item[:, None], earlier[:, :-1]], axis=1)
        self.earlier = np.where(picked[:, None], shifted, earlier)
        return np.zeros(len(slate), dtype=bool)


class SatiationEnvironment(TrueEnvironment):
    """`ganrl.data.satiation`'s world (module docstring); reward: clicks."""

    reward_kind = "click"

    def __init__(self, world: satiation.SatiationWorld):
        self.world = world
        self.n_items = len(world.b)
        self.no_click_utility = world.config.no_click_utility

    def _start(self, users: int) -> None:
        self.theta = self.world.draw_tastes(self.rng, users)
        self.satiation = self.world.initial_state(users)

    def utilities(self, items: np.ndarray | None = None) -> np.ndarray:
        if items is None:
            items = np.broadcast_to(np.arange(self.n_items)[None], (len(self.theta), self.n_items))
        return self.world.utilities(self.theta, self.satiation, items)

    def static_utilities(self) -> np.ndarray:
        """`[U, items]` the utilities without tiredness (tastes and biases only)."""
        return self.theta @ self.world.v.T + self.world.b[None, :]

    def leave_probabilities(self, slate: np.ndarray) -> np.ndarray:
        return self.world.leave_probability(self.utilities(slate).max(axis=1))

    def _after(self, slate, choice, leave_draw):
        # The world's own step draws the click from its Gumbel noise; here the click is
        # already drawn (`choice`), so only the satiation and leave updates are applied.
        leaves = leave_draw < self.leave_probabilities(slate)
        self.satiation = self.world.update_satiation(self.satiation, slate, choice)
        return leaves


def load_true_env(truth_path: str, reward: str = "utility") -> TrueEnvironment:
    """The environment of a synthetic dataset's `NAME-truth.npz` (`reward` applies to
    `ganrl.data.synthetic` worlds; the satiation world counts clicks)."""
    with np.load(truth_path, allow_pickle=False) as f:
        kind = str(f["world_kind"]) if "world_kind" in f.files else ""
        if kind == satiation.WORLD_NAME:
            return SatiationEnvironment(satiation.load_world({k: f[k] for k in f.files}))
    config, truth = load_truth(truth_path)
    return SyntheticEnvironment(config, truth["item_vectors"], truth["item_bias"], reward)
