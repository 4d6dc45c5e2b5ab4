"""The paper's baseline recommenders behind the `Policy` interface.

- `random`: k distinct candidates uniformly at random.
- `most_popular`: the k candidates clicked most often in the training logs.
- `gan_greedy`: the top k by the training user model's learned reward r(s, a), myopic (with
  a training ensemble, by its members' mean r: `MeanReward`).
- `linucb`: LinUCB with one shared linear model (Li et al., 2010, the disjoint-arm form with
  shared parameters): x(s, a) = [e_a, mean_history * e_a, seen_a] (seen_a: a is among the
  user's recent clicks), ucb = theta.x + alpha * sqrt(x A^-1 x); every displayed item is an
  observation (its reward if clicked, else 0). With the bounded residual (`residual_bound`
  c > 0, the default, and the training user model; issue 18, `ganrl.policy.residual`) the
  score is r(s, a) + c * u(s, a) * tanh(ucb): GAN-Greedy's learned reward, moved by at most c
  by what the bandit learned, so no candidate whose r is more than 2c below another's is
  picked before it. ucb is used as it is, not centred: it is in the reward's units, near 0
  for items the bandit knows to bring nothing and larger for items that paid or are
  uncertain, so the tanh's steep part sits where the bandit's evidence is (a centring over
  the candidates would move it with the candidate set). Untrained (A = ridge I, b = 0),
  ucb = alpha |x| / sqrt(ridge) is LinUCB's prior optimism, larger for items of larger
  features: the untrained slate is GAN-Greedy's only up to that bonus (exactly with alpha 0).
  c = 0: the score is ucb (LinUCB before issue 18).
- `wd_lr`: the wide part of W&D, a logistic-regression click model on x(s, a) fitted to the
  training logs; the top k by predicted click probability.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.data.dataset import EventArrays, earlier_clicks
from ganrl.policy.base import (
    Policy,
    PolicyFeatures,
    map_column_chunks,
    register,
    top_k_slate,
    transition_flags,
)
from ganrl.policy.residual import Residual
from ganrl.simulator.simulator import Observation
from ganrl.user_model.choice_model import ChoiceModel
from ganrl.user_model.model import EncodedState, UserModel


def pair_features(features: PolicyFeatures, history: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """x(s, a) = [e_a, mean_history * e_a, seen_a]: history `[B, H]`, items `[B, N]` ->
    `[B, N, 2d + 1]`, where seen_a is 1 if a is among the user's recent clicks (the user
    models learn that users rarely click an item again; without this flag a linear policy
    keeps showing what the user has already clicked)."""
    e = features.items(items)
    mean = features.state(history)[:, None, : features.item_dim]
    seen = tf.reduce_any(tf.equal(items[:, :, None], history[:, None, :]), axis=-1)
    return tf.concat([e, mean * e, tf.cast(seen, tf.float32)[..., None]], axis=-1)


def pair_dim(features: PolicyFeatures) -> int:
    """The width of `pair_features`."""
    return 2 * features.item_dim + 1


class MeanReward:
    """r(s, a) of several user models of the same logs (an ensemble's training members): the
    mean of their learned rewards. It stands wherever one user model's r is read
    (`encoded_state`, `learned_rewards`): its encoded state is the tuple of its members'.

    Why: one user model's ranking of the whole catalogue depends much on its seed. In the
    sim-to-real harness the greedy top k of single LSTMs of the same logs served true users
    from 261.6 to 342.4 (lag world, seed 0); the top k by the mean of five served more than
    their average on five of six runs, and far more than the worst of them on all six
    (docs/sim_to_real.md, "GAN-Greedy by the ensemble's mean").
    """

    def __init__(self, models):
        if len(models) < 2:
            raise ValueError(f"MeanReward of {len(models)} user models: expected two or more")
        self.models = tuple(models)

    def encode(self, history: tf.Tensor, events: tf.Tensor | None = None) -> tuple:
        """Every member's `encoded_state`."""
        return tuple(encoded_state(model, history, events) for model in self.models)

    def utilities(self, encoded: tuple, items: tf.Tensor, mask: tf.Tensor | None = None):
        """`[B, N]` the members' mean r(s, a) for their `encode`d states and items `[B, N]`."""
        parts = [
            model.utilities(state, items, mask=mask)
            for model, state in zip(self.models, encoded, strict=True)
        ]
        return tf.add_n(parts) / float(len(parts))


def encoded_state(
    model: UserModel | MeanReward, history: tf.Tensor, events: tf.Tensor | None = None
) -> EncodedState | tuple:
    """What a user model's r(s, a) reads of the states that histories `[B, H]` (and recent
    display sets `events`, if known: `ChoiceModel.replay_events`) lead to (a `MeanReward`:
    each member's). The model is frozen while a policy learns, so a learner may keep this
    instead of replaying the events again at every update."""
    if isinstance(model, MeanReward):
        return model.encode(history, events)
    choice_model = ChoiceModel(model)
    return choice_model.state_vector(choice_model.replay_events(history, events))


def encoded_states(
    models, history: tf.Tensor, events: tf.Tensor | None = None
) -> list[EncodedState | tuple]:
    """`encoded_state` of each of `models` (user models or `MeanReward`s), in order; a user
    model that appears more than once (an ensemble member that is also in the mean reward)
    is encoded once."""
    states = {}

    def state(model):
        if isinstance(model, MeanReward):
            return tuple(state(member) for member in model.models)
        if id(model) not in states:
            states[id(model)] = encoded_state(model, history, events)
        return states[id(model)]

    return [state(model) for model in models]


def learned_rewards(
    model: UserModel | MeanReward,
    history: tf.Tensor,
    candidates: tf.Tensor,
    chunk: int = 0,
    events: tf.Tensor | None = None,
    encoded: EncodedState | tuple | None = None,
) -> tf.Tensor:
    """`[B, N]` r(s, a) of a user model for the states its histories (and recent display
    sets `events`, if known: `ChoiceModel.replay_events`) lead to, or for the states
    `encoded` (`encoded_state`, then history and events are not read); with `chunk`, scored
    `chunk` candidates at a time (memory of one chunk)."""
    if encoded is None:
        encoded = encoded_state(model, history, events)
    if not chunk:
        return model.utilities(encoded, candidates)
    return map_column_chunks(
        lambda cols: model.utilities(encoded, tf.gather(candidates, cols, axis=1)),
        tf.shape(candidates)[1],
        chunk,
    )


@register("random")
class RandomPolicy(Policy):
    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        b, n = observation.candidates.shape
        return tf.constant(np.argsort(self.rng.random((b, n)), axis=1)[:, : self.k], tf.int32)


@register("most_popular")
class MostPopular(Policy):
    def __init__(
        self, features: PolicyFeatures, k: int, seed: int = 0, *, click_counts: np.ndarray
    ):
        """click_counts: `[n_items]` clicks of each item in the training logs."""
        super().__init__(features, k, seed)
        # Tiny noise breaks ties between equally popular items at random, not by id.
        noise = np.random.default_rng(seed).random(len(click_counts)) * 1e-3
        self.popularity = tf.constant(click_counts + noise, tf.float32)

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        return top_k_slate(tf.gather(self.popularity, observation.candidates), self.k)


@register("gan_greedy")
class GanGreedy(Policy):
    def __init__(self, features: PolicyFeatures, k: int, seed: int = 0, *, reward_model: UserModel):
        super().__init__(features, k, seed)
        self.model = reward_model

    @tf.function(reduce_retracing=True)
    def _scores(self, history, candidates, events=None):
        return learned_rewards(self.model, history, candidates, events=events)

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        """The k candidates of highest learned reward for the state of the user's clicks and
        of the display sets she saw (`observation.events`, when known)."""
        scores = self._scores(observation.history, observation.candidates, observation.events)
        return top_k_slate(scores, self.k)


@dataclasses.dataclass(frozen=True)
class LinUCBConfig:
    """Attributes:
    alpha: the weight of the confidence width in the score.
    ridge: the ridge prior, A = ridge * I before any observation.
    residual_bound: c: the bandit's ucb moves a candidate's score by at most c in the
      learned reward's units around GAN-Greedy's (module docstring; needs the reward model);
      0: the score is the ucb alone.
    uncertainty: with an ensemble of user models, the bound shrinks by exp(-uncertainty *
      the members' std of the item's learned reward) (0: not at all).
    """

    alpha: float = 0.5
    ridge: float = 1.0
    residual_bound: float = 1.0
    uncertainty: float = 1.0

    def __post_init__(self):
        config_checks.check(self, "a non-negative number", "alpha", "residual_bound", "uncertainty")
        config_checks.check(self, "a positive number", "ridge")


@register("linucb")
class LinUCB(Policy):
    learns = True
    credits_clicked_item = True

    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int = 0,
        config: LinUCBConfig = LinUCBConfig(),
        *,
        reward_model: UserModel | None = None,
        ensemble_models=(),
    ):
        """reward_model: the training user model, whose r(s, a) the bounded residual stays
        near (None: the ucb alone); ensemble_models: the user models of an ensemble simulator
        (two or more), whose disagreement on r(s, a) shrinks the bound."""
        super().__init__(features, k, seed)
        self.residual = Residual(
            reward_model, config.residual_bound, config.uncertainty, ensemble_models
        )
        dim = pair_dim(features)
        self.alpha = config.alpha
        self.a_matrix = tf.Variable(config.ridge * tf.eye(dim), trainable=False, name="A")
        self.b_vector = tf.Variable(tf.zeros(dim), trainable=False, name="b")

    def ucb(self, observation: Observation, width: bool = True) -> tf.Tensor:
        """`[B, N]` theta.x + alpha * sqrt(x A^-1 x); the ridge estimate theta.x alone
        without `width`."""
        x = pair_features(self.features, observation.history, observation.candidates)
        a_inv = tf.linalg.inv(self.a_matrix)
        mean = tf.einsum("bnd,d->bn", x, tf.linalg.matvec(a_inv, self.b_vector))
        if not width:
            return mean
        return mean + self.alpha * tf.sqrt(
            tf.maximum(tf.einsum("bnd,de,bne->bn", x, a_inv, x), 0.0)
        )

    @tf.function(reduce_retracing=True)
    def _bounded(self, history, candidates, ucb, events=None):
        """r + c u tanh(ucb); r reads the users' recent display sets when known (the bandit
        learns on its pair features alone)."""
        return self.residual.score(history, candidates, ucb, events=events)

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        """Exploring (learning online), the optimistic ucb; frozen (validated, tested,
        served), the ridge estimate, so that the untrained policy is GAN-Greedy with the
        bounded residual (its prior optimism alpha |x| / sqrt(ridge) differs by item: with
        it, the untrained start the snapshot selection measures gains against moved items
        within the bound, and served true users below GAN-Greedy's reward)."""
        ucb = self.ucb(observation, width=explore)
        if self.residual.active:
            return top_k_slate(
                self._bounded(observation.history, observation.candidates, ucb, observation.events),
                self.k,
            )
        return top_k_slate(ucb, self.k)

    def observe(self, observation, slate, reward, clicked_index, next_observation, done):
        items = tf.gather(observation.candidates, slate, batch_dims=1)
        x = pair_features(self.features, observation.history, items)  # [B, k, 2d]
        hit = tf.one_hot(clicked_index, self.k) * tf.cast(reward, tf.float32)[:, None]
        valid, _ = transition_flags(observation, next_observation, done)
        if not valid.all():  # a departed user's slates teach nothing
            x, hit = tf.boolean_mask(x, valid), tf.boolean_mask(hit, valid)
        linucb_update(self.a_matrix, self.b_vector, x, hit)

    def checkpoint_objects(self) -> dict:
        return {"A": self.a_matrix, "b": self.b_vector}


def linucb_update(
    a_matrix: tf.Variable, b_vector: tf.Variable, x: tf.Tensor, rewards: tf.Tensor
) -> None:
    """A += sum x x^T and b += sum r x over every displayed item (`x [B, k, d]`,
    `rewards [B, k]`)."""
    flat = tf.reshape(x, [-1, x.shape[-1]])
    a_matrix.assign_add(tf.matmul(flat, flat, transpose_a=True))
    b_vector.assign_add(tf.linalg.matvec(flat, tf.reshape(rewards, [-1]), transpose_a=True))


@dataclasses.dataclass(frozen=True)
class WideLRConfig:
    """Attributes:
    inverse_regularisation: scikit-learn's `C`, the inverse of the L2 penalty's weight.
    max_iter: the solver's iterations at most.
    """

    inverse_regularisation: float = 1.0
    max_iter: int = 500

    def __post_init__(self):
        config_checks.check(self, "a positive number", "inverse_regularisation")
        config_checks.check(self, "a positive integer", "max_iter")


@register("wd_lr")
class WideLogisticRegression(Policy):
    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int = 0,
        config: WideLRConfig = WideLRConfig(),
        *,
        train_events: EventArrays,
        history_length: int = 10,
    ):
        """train_events: the training logs it is fitted to; history_length: the clicks of
        each logged event's history it is fitted with (the width it is served with)."""
        super().__init__(features, k, seed)
        from sklearn.linear_model import LogisticRegression

        self.history_length = history_length
        x, y = self._training_pairs(train_events)
        model = LogisticRegression(max_iter=config.max_iter, C=config.inverse_regularisation).fit(
            x, y
        )
        self.weights = tf.constant(model.coef_[0], tf.float32)
        self.bias = float(model.intercept_[0])

    def _training_pairs(self, events) -> tuple[np.ndarray, np.ndarray]:
        """Every displayed item of the training logs, with the user's history before it."""
        histories = earlier_clicks(
            events.clicked_item, events.event_offsets, self.history_length
        ).astype(np.int32)
        x = pair_features(
            self.features, tf.constant(histories), tf.constant(events.display)
        ).numpy()
        mask = events.display_mask
        y = np.zeros(mask.shape, np.int64)
        rows = np.flatnonzero(events.clicked_pos >= 0)
        y[rows, events.clicked_pos[rows]] = 1
        return x[mask], y[mask]

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        x = pair_features(self.features, observation.history, observation.candidates)
        return top_k_slate(tf.einsum("bnd,d->bn", x, self.weights) + self.bias, self.k)
