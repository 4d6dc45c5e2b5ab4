"""A synthetic world where greedy is far from optimal over a session: satiation and leaving.

The ground truth (`SatiationConfig`; every draw from the seed):
- `topics` topics with centres m_c ~ N(0, (9 / d) I_d); item i has a topic c_i (uniform), a
  vector v_i = m_{c_i} + e_i, e_i ~ N(0, (spread^2 9 / d) I_d) (spread = `topic_spread`), and
  a bias b_i ~ N(0, 0.5^2); a user has a taste theta_u ~ N(0, I_d), so her taste is mostly
  for a few topics;
- satiation: a user carries a tiredness s_u[c] >= 0 per topic (0 at the start). The utility
  of item i at step t is u_t(i) = theta_u . v_i + b_i - alpha s_u[c_i] (alpha =
  `satiation_weight`). After each slate, s <- recovery * s + shown_weight * (items of topic c
  in the slate) + clicked_weight * [the click was of topic c]: users tire of the topics they
  were shown and clicked and recover slowly (recovery = `satiation_recovery`, 0.9 a step);
- choice: a softmax over the slate's utilities and a no-click option of utility
  `no_click_utility`;
- leaving: after each slate the user leaves with probability
  leave_base + (leave_max - leave_base) * sigmoid((leave_threshold - best) / leave_scale),
  best the slate's highest utility (satiation included): poor slates drive users away. Her
  session (the episode) ends after that slate, whose click still counts;
- clickbait (off by default, `clickbait_share` 0): a share of the items is clickbait, more
  attractive now (`clickbait_bias` added to b_i) and disappointing once clicked: a click on
  one adds `clickbait_cost` to the user's disappointment D >= 0, which lowers the utility of
  every item (u_t(i) above, less D) and recovers like tiredness. The state then holds D as
  one more column after the topics' tiredness (`state_width`);
- reward (for `ganrl.sim2real`): one per click, summed over the session (at most the horizon).
A greedy recommender that shows a user's favourite topic again and again tires her of it
and loses her; spreading slates over the topics she likes keeps her longer. With clickbait,
the items that pay most now cost the most later: a policy that knows the user's state
exactly but looks one step ahead only still shows them.

The logs (released format, `ganrl.data.synthetic.write_released_log`): every user from the
start until she leaves or `events_per_user` slates; each display set has `min_display` to
`max_display` items (uniform) drawn by the LOGGING POLICY: with probability
`logging_popular` (0.5) by popularity, successively without replacement with probability
proportional to exp(gamma b_i) (gamma = `popularity_strength`, 2), else uniformly at random.
With `logging_targeting` tau > 0 the first kind are drawn with weights exp(gamma b_i + tau
theta_u . v_i) instead: a deployed recommender that knows each user's static taste (not her
tiredness), so a display set tells something about its user (`satiation_targeted`).
Display sets without a click are written with no click (the reader keeps them). Users split
50/25/25 at random. `NAME-truth.npz` holds `world_kind` ("satiation"), `config` (JSON), the
item parameters `item_vectors [items, d]`, `item_bias [items]`, `item_topic [items]`,
`item_clickbait [items]`, `user_taste [users, d]`, `session_length [users]`, and the scalars
`log_mean_session_length` and `log_clicks_per_user`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from ganrl.data.convert import Converted
from ganrl.data.dataset import ItemFeatures
from ganrl.data.released import read_released
from ganrl.data.safe_io import check_settings
from ganrl.data.synthetic import (
    draw_displays,
    draw_user_splits,
    log_shape_checks,
    with_catalogue,
    write_released_log,
)

WORLD_NAME = "satiation"
CLICKBAIT_FIELDS = ("clickbait_share", "clickbait_bias", "clickbait_cost")
# The named satiation worlds (their settings beside the defaults): the sim-to-real harness's
# `--world` choices.
SATIATION_WORLDS = {
    WORLD_NAME: {},
    "satiation_clickbait": {"clickbait_share": 0.2},
    "satiation_targeted": {"logging_targeting": 0.5},
}


@dataclasses.dataclass(frozen=True)
class SatiationConfig:
    """The world's settings (see the module docstring).

    Attributes:
      users: users in the logs.
      items: catalogue size.
      topics: number of topics.
      events_per_user: the longest session in the logs (display sets).
      min_display, max_display: logged display set sizes, uniform in this range.
      feature_dim: d.
      topic_spread: sd of an item's vector around its topic centre, relative to the centres'.
      satiation_weight: alpha, utility lost per unit of tiredness.
      satiation_shown: tiredness added per shown item of a topic.
      satiation_clicked: tiredness added to the clicked item's topic.
      satiation_recovery: the factor tiredness keeps from one step to the next.
      no_click_utility: the no-click option's utility.
      leave_base, leave_max: the leave probability after a very good / a very poor slate.
      leave_threshold, leave_scale: where (best utility) and how fast it changes.
      logging_popular: the logging policy's share of popularity-drawn display sets.
      logging_targeting: tau, how much those draws follow the user's taste (0: not at all).
      popularity_strength: gamma of the popularity draw.
      clickbait_share: the share of clickbait items (0: none, the world as without them).
      clickbait_bias: what a clickbait item adds to its bias.
      clickbait_cost: the disappointment a click on a clickbait item adds.
    """

    users: int = 3000
    items: int = 500
    topics: int = 20
    events_per_user: int = 20
    min_display: int = 2
    max_display: int = 10
    feature_dim: int = 8
    topic_spread: float = 0.4
    satiation_weight: float = 2.0
    satiation_shown: float = 0.3
    satiation_clicked: float = 1.0
    satiation_recovery: float = 0.9
    no_click_utility: float = 1.0
    leave_base: float = 0.05
    leave_max: float = 0.6
    leave_threshold: float = 2.0
    leave_scale: float = 1.0
    logging_popular: float = 0.5
    logging_targeting: float = 0.0
    popularity_strength: float = 2.0
    clickbait_share: float = 0.0
    clickbait_bias: float = 1.5
    clickbait_cost: float = 1.0

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        if not self.clickbait_share:  # a world without clickbait keeps its older truth file
            for name in CLICKBAIT_FIELDS:
                values.pop(name)
        if not self.logging_targeting:  # and so does one logged without targeting
            values.pop("logging_targeting")
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SatiationConfig":
        return cls(**json.loads(text))

    @property
    def state_width(self) -> int:
        """Columns of a user's state: the topics' tiredness, then D with clickbait."""
        return self.topics + (1 if self.clickbait_share else 0)

    def validate(self) -> None:
        """Raises `DataError` naming the first setting out of range and what it needs."""
        c = self
        check_settings(
            self,
            log_shape_checks(self)
            + [
                ("topics", 1 <= c.topics <= c.items, f"between 1 and --items ({c.items})"),
                ("satiation_recovery", 0 <= c.satiation_recovery <= 1, "in [0, 1]"),
                ("leave_base", 0 <= c.leave_base, "at least 0"),
                (
                    "leave_max",
                    c.leave_base <= c.leave_max <= 1,
                    f"between --leave_base ({c.leave_base}) and 1",
                ),
                ("leave_scale", c.leave_scale > 0, "above 0"),
                ("logging_popular", 0 <= c.logging_popular <= 1, "in [0, 1]"),
                ("logging_targeting", c.logging_targeting >= 0, "at least 0"),
                ("clickbait_share", 0 <= c.clickbait_share <= 1, "in [0, 1]"),
                ("clickbait_cost", c.clickbait_cost >= 0, "at least 0"),
            ],
        )


@dataclasses.dataclass(frozen=True)
class SatiationWorld:
    """The true model: item parameters and the dynamics (vectorised over users).

    Attributes:
      config: the settings.
      v: `[items, d]` item vectors; b: `[items]` biases (clickbait's included); topic:
        `[items]` topic ids; clickbait: `[items]` bool (all False without clickbait).
    """

    config: SatiationConfig
    v: np.ndarray
    b: np.ndarray
    topic: np.ndarray
    clickbait: np.ndarray | None = None

    def __post_init__(self):
        if self.clickbait is None and self.b is not None:
            object.__setattr__(self, "clickbait", np.zeros(len(self.b), bool))

    @classmethod
    def draw(cls, config: SatiationConfig, rng: np.random.Generator) -> "SatiationWorld":
        """Draws the items (the first draws of the world's stream)."""
        c = config
        scale = 3.0 / np.sqrt(c.feature_dim)
        centres = rng.normal(size=(c.topics, c.feature_dim)) * scale
        topic = rng.integers(0, c.topics, c.items)
        v = centres[topic] + rng.normal(size=(c.items, c.feature_dim)) * scale * c.topic_spread
        b = rng.normal(scale=0.5, size=c.items)
        clickbait = np.zeros(c.items, bool)
        if c.clickbait_share:  # drawn only then: a world without clickbait keeps its stream
            clickbait = rng.random(c.items) < c.clickbait_share
            b = b + c.clickbait_bias * clickbait
        return cls(c, v, b, topic, clickbait)

    def initial_state(self, users: int) -> np.ndarray:
        """`[users, state_width]` the state of new users: not tired, not disappointed."""
        return np.zeros((users, self.config.state_width))

    def draw_tastes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`[n, d]` tastes of new users from the prior."""
        return rng.normal(size=(n, self.config.feature_dim))

    def utilities(self, taste: np.ndarray, satiation: np.ndarray, items: np.ndarray) -> np.ndarray:
        """taste `[U, d]`, satiation `[U, state_width]`, items `[U, n]` -> `[U, n]`
        utilities."""
        tired = np.take_along_axis(satiation, self.topic[items], axis=1)
        u = (
            np.einsum("ud,und->un", taste, self.v[items])
            + self.b[items]
            - self.config.satiation_weight * tired
        )
        if self.config.clickbait_share:
            u = u - satiation[:, -1:]
        return u

    def leave_probability(self, best: np.ndarray) -> np.ndarray:
        """`[U]` probability of leaving after a slate whose best utility is `best [U]`."""
        c = self.config
        rise = 1.0 / (1.0 + np.exp(-(c.leave_threshold - best) / c.leave_scale))
        return c.leave_base + (c.leave_max - c.leave_base) * rise

    def step(
        self,
        taste: np.ndarray,
        satiation: np.ndarray,
        shown: np.ndarray,
        mask: np.ndarray,
        gumbel: np.ndarray,
        leave_draw: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One slate for every user.

        Args:
          taste: `[U, d]`; satiation: `[U, topics]` before the slate.
          shown: `[U, D]` the slate's items; mask: `[U, D]` bool, True on real items.
          gumbel: `[U, D + 1]` standard Gumbel noise (the last column: no click).
          leave_draw: `[U]` uniforms in [0, 1).

        Returns:
          choice `[U]` (slate position, D for no click), satiation after the slate
          `[U, topics]`, and `[U]` bool whether the user leaves after it.
        """
        c = self.config
        u = np.where(mask, self.utilities(taste, satiation, shown), -np.inf)
        logits = np.concatenate([u, np.full((len(u), 1), c.no_click_utility)], axis=1)
        choice = np.argmax(logits + gumbel, axis=1)
        leaves = leave_draw < self.leave_probability(u.max(axis=1))
        return choice, self.update_satiation(satiation, shown, choice, mask), leaves

    def update_satiation(
        self,
        satiation: np.ndarray,
        shown: np.ndarray,
        choice: np.ndarray,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """`[U, state_width]` the state after showing `shown [U, D]` (real items where
        `mask`) and the choices `choice [U]` (D: no click)."""
        n = shown.shape[1]
        clicked = choice < n
        click_probability = np.zeros(shown.shape)
        click_probability[np.flatnonzero(clicked), choice[clicked]] = 1.0
        return self.expected_satiation(satiation, shown, click_probability, mask)

    def expected_satiation(
        self,
        satiation: np.ndarray,
        shown: np.ndarray,
        click_probability: np.ndarray,
        mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """`[U, state_width]` the expected state after showing `shown [U, D]` (real items
        where `mask`) when each is clicked with `click_probability [U, D]` (one-hot: the
        state after that click; `update_satiation`)."""
        c = self.config
        users = np.arange(len(shown))
        mask = np.ones(shown.shape, dtype=bool) if mask is None else mask
        topics = self.topic[shown]
        width = satiation.shape[1]
        flat = (users[:, None] * width + topics).ravel()
        weights = c.satiation_shown * mask + c.satiation_clicked * click_probability
        added = np.bincount(flat, weights.ravel(), len(users) * width).reshape(satiation.shape)
        if c.clickbait_share:
            added[:, -1] += c.clickbait_cost * (click_probability * self.clickbait[shown]).sum(1)
        return c.satiation_recovery * satiation + added


def generate_log(path: str, config: SatiationConfig, seed: int) -> dict:
    """Writes the logging policy's released-format log to `path` (see the module docstring).

    Returns:
      {"world": the `SatiationWorld`, "theta": `[users, d]`, "session_length": `[users]`,
      "clicks": `[users]`}.
    """
    c = config
    rng = np.random.default_rng(seed)
    world = SatiationWorld.draw(c, rng)
    theta = world.draw_tastes(rng, c.users)
    satiation = world.initial_state(c.users)
    active = np.ones(c.users, dtype=bool)
    popular_weights = np.exp(c.popularity_strength * world.b)
    uniform_weights = np.ones(c.items)
    parts = {"display": [], "mask": [], "clicked": [], "user": []}
    length = np.zeros(c.users, dtype=np.int64)
    clicks = np.zeros(c.users, dtype=np.int64)
    for _ in range(c.events_per_user):  # vectorised over the users still there
        users = np.flatnonzero(active)
        if not len(users):
            break
        n = len(users)
        sizes = rng.integers(c.min_display, c.max_display + 1, n)
        popular = rng.random(n) < c.logging_popular
        display = np.empty((n, c.max_display), dtype=np.int64)
        weights = popular_weights
        if c.logging_targeting:  # each user's own weights
            log_w = c.popularity_strength * world.b + c.logging_targeting * (
                theta[users[popular]] @ world.v.T
            )
            weights = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        display[popular] = draw_displays(rng, int(popular.sum()), weights, c.max_display)
        display[~popular] = draw_displays(
            rng, int((~popular).sum()), uniform_weights, c.max_display
        )
        mask = np.arange(c.max_display)[None, :] < sizes[:, None]
        gumbel = rng.gumbel(size=(n, c.max_display + 1))
        choice, satiation[users], leaves = world.step(
            theta[users], satiation[users], display, mask, gumbel, rng.random(n)
        )
        clicked = np.where(choice < c.max_display, choice, -1)
        for key, value in (
            ("display", display),
            ("mask", mask),
            ("clicked", clicked),
            ("user", users),
        ):
            parts[key].append(value)
        length[users] += 1
        clicks[users] += clicked >= 0
        active[users[leaves]] = False
    joined = {key: np.concatenate(value) for key, value in parts.items()}
    write_released_log(
        path,
        joined["display"],
        joined["mask"],
        joined["clicked"],
        joined["user"],
        draw_user_splits(rng, c.users),
    )
    return {"world": world, "theta": theta, "session_length": length, "clicks": clicks}


def make_satiation(
    data_folder: str, name: str, seed: int, config: SatiationConfig = SatiationConfig()
) -> tuple[Converted, dict]:
    """Generates `NAME.txt` in `data_folder` and converts it (item features: the one-hot id).

    Returns:
      The converted dataset and the contents of `NAME-truth.npz` (module docstring).
    """
    config.validate()
    path = os.path.join(data_folder, name + ".txt")
    out = generate_log(path, config, seed)
    converted = read_released(path, name, seed)
    if converted.dataset.n_items != config.items:  # an item never displayed
        converted = with_catalogue(converted, config.items)
    converted.dataset.item_features = ItemFeatures(n_items=config.items, identity=True)
    converted.stats["feature_dim"] = converted.dataset.item_features.feature_dim
    world = out["world"]
    truth = {
        "world_kind": WORLD_NAME,
        "config": config.to_json(),
        "item_vectors": world.v,
        "item_bias": world.b,
        "item_topic": world.topic,
        "item_clickbait": world.clickbait,
        "user_taste": out["theta"],
        "session_length": out["session_length"],
        "log_mean_session_length": float(out["session_length"].mean()),
        "log_clicks_per_user": float(out["clicks"].mean()),
    }
    return converted, truth


def load_world(truth: dict) -> SatiationWorld:
    """The world of a satiation `NAME-truth.npz`'s arrays."""
    config = SatiationConfig.from_json(str(truth["config"]))
    clickbait = truth.get("item_clickbait")  # None in a truth file older than clickbait
    return SatiationWorld(
        config, truth["item_vectors"], truth["item_bias"], truth["item_topic"], clickbait
    )
