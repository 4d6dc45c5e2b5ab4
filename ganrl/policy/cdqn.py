"""Cascading DQN (Chen et al., ICML 2019, Section 5: "Cascading Q-networks").

A slate A = (a^1, ..., a^k) is scored by k Q-functions sharing the state s:
  Q^j(s, a^1, ..., a^j),  j = 1..k,
each approximating Q^{j*}(s, a^{1:j}) = max_{a^{j+1:k}} Q*(s, a^{1:k}). The slate is built by
the cascade of argmaxes a^{j*} = argmax_a Q^j(s, a^{1:j-1*}, a) without repeats: O(k n) scores
per user, never a search over all k-subsets. All Q^j are regressed to the same target
  y = r + gamma * Q^k(s', A'*; theta'),
where A'* is the slate the cascade picks at the next state (picked with the online networks,
evaluated by the target network theta'). (The equation numbers of the paper could not be
checked here; the names above follow its Section 5.)

Each Q^j is one ELU layer over the concatenation [s, e(a^1), ..., e(a^j)] and a linear output.
That first layer splits into W^j s + sum_{i<j} U^{j,i} e(a^i) + D e(a^j), the candidate's own
part D shared by all positions, so D e(a) is computed once per step for every candidate, not
once per cascade position; what differs between positions (W^j s and the earlier picks) is
per user, not per candidate. Above `candidate_chunk` candidates the cascade scores them a
chunk at a time (`chunked_position_scorer`), so memory is that of one chunk: 100,000+
candidates never become a users x candidates x features tensor.

With the learned reward r(s, a) as the candidate's last feature (`reward_residual`), each Q^j
also adds alpha_j r(s, a^j), alpha_j learned and starting at 1: the untrained cascade is then
GAN-Greedy's ranking, and the networks learn what the long run adds to the immediate reward.
A state-only term v_j(s) (linear) carries the level of each Q^j, which the regression needs
(Q is a sum of discounted rewards) but the cascade's ranking ignores, so that fitting the level
does not bend the items' scores.

The bounded residual (`residual_bound` c > 0, the default; issue 18): each Q^j is
  Q^j(s, a^{1:j}) = v_j(s) + w_j * (r(s, a^j) + c * u(s, a^j) * tanh(h_j(s, a^{1:j}))),
w_j = softplus(.) > 0 learned (starting at 1), h_j the network above. The greedy score
v_j(s) + w_j r(s, a^j) is GAN-Greedy's ranking; the learned part moves an item by at most c
in r's units, so two candidates whose learned rewards differ by more than 2c never swap: the
policy learns only how to reorder what the user model finds nearly equal, where a long-run
effect can matter, and cannot promote items the model thinks poor (what the unbounded
network learned to do in a simulator whose errors it exploited, docs/sim_to_real.md). With
an ensemble of user models (`ensemble_models`), u(s, a) = exp(-uncertainty * std_m r_m(s, a))
shrinks the bound where the members disagree on the item; with one model u = 1. c = 0 is the
unbounded network of the paper (before issue 18). The bounded score and u are
`ganrl.policy.residual`'s, which PPO, A2C, DDPG and LinUCB share.

Targets: with `double_q` (the default, and the behaviour before these options existed) the
next slate A'* is picked by the online networks and valued by the target ones (double
Q-learning, van Hasselt et al. 2016); without, the target networks pick and value it. With
`n_step` n > 1 a transition's reward is the discounted sum of the n rewards that follow it in
its episode, bootstrapped by gamma^n Q^k_target n steps later (no bootstrap at the episode's
end).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.policy.base import Policy, PolicyFeatures, map_column_chunks, register, transition_flags
from ganrl.policy.replay import ReplayBuffer
from ganrl.policy.residual import bounded_score, ensemble_shrink, reward_weights
from ganrl.simulator.simulator import Observation

keras = tf.keras
NEG_INF = -1e9
EXPLORATIONS = ("slate", "bound")


def cascade_select(
    position_scores: Callable[[int, tf.Tensor], tf.Tensor],
    batch_size: int,
    n_candidates: int,
    k: int,
) -> tf.Tensor:
    """The cascade of argmaxes without repeats.

    Args:
      position_scores: `(j, picked [B, j]) -> [B, N]`, the scores Q^{j+1}(s, picked, a) of
        every candidate a at position j given the items already picked.
      batch_size, n_candidates, k: B, N and the slate size.

    Returns:
      `[B, k]` int32 candidate indices, no repeats within a row.
    """
    picked = tf.zeros([batch_size, 0], tf.int32)
    taken = tf.zeros([batch_size, n_candidates], tf.bool)
    for j in range(k):
        scores = tf.where(taken, NEG_INF, position_scores(j, picked))
        choice = tf.argmax(scores, axis=-1, output_type=tf.int32)
        picked = tf.concat([picked, choice[:, None]], axis=1)
        taken |= tf.one_hot(choice, n_candidates, on_value=True, off_value=False)
    return picked


def cascading_td_targets(
    reward: tf.Tensor, done: tf.Tensor, next_q: tf.Tensor, gamma: float
) -> tf.Tensor:
    """y = r + gamma * (1 - done) * Q^k_target(s', A'*), shared by every Q^j.

    Args:
      reward: `[B]`; done: `[B]` 1.0 where the episode ended; next_q: `[B]` the target
      network's Q^k of the cascade's slate at the next state.
    """
    return reward + gamma * (1.0 - done) * next_q


def n_step_return(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """sum_i gamma^i r_i over the first axis: `[n, B]` rewards -> `[B]`."""
    rewards = np.asarray(rewards, np.float32)
    return np.tensordot(gamma ** np.arange(len(rewards), dtype=np.float32), rewards, axes=1)


class CascadingQNetwork(keras.Model):
    """The k Q-functions over a shared state (see the module docstring).

    Args:
      k, hidden: positions and hidden units of each Q^j.
      reward_residual: the candidates' last feature is the learned reward r(s, a), and each
        Q^j adds a multiple of it (the untrained cascade is then GAN-Greedy's ranking).
      residual_bound: c > 0 (needs `reward_residual`): the bounded form, in which the learned
        part moves an item's score by at most c in r's units; 0: the unbounded network.
    """

    def __init__(
        self,
        k: int,
        hidden: int,
        reward_residual: bool = False,
        residual_bound: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.k, self.hidden = k, hidden
        self.residual_bound = float(residual_bound)
        # w_j = softplus(greedy_weight[j]) with the bounded residual.
        self.greedy_weight, self.reward_weight = reward_weights(
            self, (k,), reward_residual, self.residual_bound
        )
        self.state_layer = keras.layers.Dense(k * hidden, name="state")  # W^j s + b^j
        self.state_value = keras.layers.Dense(k, name="value")  # v_j(s)
        self.own_item = keras.layers.Dense(hidden, use_bias=False, name="own")  # D
        self.prev_items = keras.layers.Dense(k * k * hidden, use_bias=False, name="prev")
        # With the residual the output starts at zero, so the untrained cascade is greedy.
        self.out = self.add_weight(
            name="out",
            shape=(k, hidden),
            initializer="zeros" if reward_residual else keras.initializers.GlorotUniform(),
        )

    def build_for(self, state_dim: int, item_dim: int) -> None:
        self.state_layer.build((None, state_dim))
        self.state_value.build((None, state_dim))
        self.own_item.build((None, item_dim))
        self.prev_items.build((None, item_dim))
        self.built = True

    def _state(self, state):  # [B, S] -> [B, k, H]
        return tf.reshape(self.state_layer(state), [-1, self.k, self.hidden])

    def _prev(self, items):  # items at positions 0..m-1 [B, m, d] -> U^{j,i} e(a^i) [B, m, k(j), H]
        m = tf.shape(items)[1]
        shape = tf.concat([tf.shape(items)[:2], [self.k, self.k, self.hidden]], 0)
        per_pair = tf.reshape(self.prev_items(items), shape)  # [B, m, k(i), k(j), H]
        return tf.einsum("bmijh,mi->bmjh", per_pair, tf.one_hot(tf.range(m), self.k))

    def _pair_kernel(self) -> tf.Tensor:
        """U as `[d, k(i), k(j), H]`: block (i, j) maps the item at position i into Q^j."""
        kernel = self.prev_items.kernel
        return tf.reshape(kernel, [tf.shape(kernel)[0], self.k, self.k, self.hidden])

    def _combine(
        self,
        learned: tf.Tensor,
        value: tf.Tensor,
        reward: tf.Tensor,
        shrink: tf.Tensor | None,
        j: int | None,
    ) -> tf.Tensor:
        """The Q values from the network's output h `learned` `[B, N]` (or `[B, k]` for a
        slate, j None: position j of each column), the level v_j(s) `value` (`[B, 1]` or
        `[B, k]`), the candidates' r(s, a) `reward` (same shape as `learned`) and the bound's
        factor u(s, a) `shrink` (same shape, or None: 1)."""
        if self.greedy_weight is not None:
            weight = tf.nn.softplus(self.greedy_weight if j is None else self.greedy_weight[j])
            return value + bounded_score(reward, learned, self.residual_bound, shrink, weight)
        if self.reward_weight is None:
            return learned + value
        weight = self.reward_weight if j is None else self.reward_weight[j]
        return learned + value + weight * reward

    def greedy_score(self, state: tf.Tensor, slate_items: tf.Tensor) -> tf.Tensor:
        """`[B, k]` v_j(s) + w_j r(s, a^j) of a slate (item features `[B, k, d]`, r last): the
        part of the bounded Q^j that is GAN-Greedy's ranking (|Q^j - this| <= w_j c)."""
        weight = tf.nn.softplus(self.greedy_weight)
        return self.state_value(state) + weight * slate_items[..., -1]

    def position_scorer(
        self, state: tf.Tensor, candidates: tf.Tensor, shrink: tf.Tensor | None = None
    ) -> Callable[[int, tf.Tensor], tf.Tensor]:
        """For `cascade_select`: state `[B, S]`, candidate features `[B, N, d]` and the
        bound's factor of each candidate `[B, N]` (None: 1)."""
        state_part, value = self._state(state), self.state_value(state)
        own = self.own_item(candidates)  # once per step: [B, N, H]
        reward = candidates[..., -1]

        def scores(j, picked):
            pre = self._position_pre(state_part, j, tf.gather(candidates, picked, batch_dims=1))
            hidden = tf.nn.elu(pre[:, None, :] + own)
            learned = tf.einsum("bnh,h->bn", hidden, self.out[j])
            return self._combine(learned, value[:, j : j + 1], reward, shrink, j)

        return scores

    def chunked_position_scorer(
        self,
        state: tf.Tensor,
        n: int | tf.Tensor,
        features_at: Callable[[tf.Tensor], tf.Tensor],
        chunk: int,
        own_at: Callable[[tf.Tensor], tf.Tensor] | None = None,
        reward_at: Callable[[tf.Tensor], tf.Tensor] | None = None,
        shrink_at: Callable[[tf.Tensor], tf.Tensor] | None = None,
    ) -> Callable[[int, tf.Tensor], tf.Tensor]:
        """`position_scorer` for n candidates whose features `features_at(indices [B, M]) ->
        [B, M, d]` are made `chunk` candidates at a time (the same scores). `own_at(indices)
        -> [B, M, H]` and `reward_at(indices) -> [B, M]`, if given, are faster forms of D e(a)
        (e.g. from a projected item table) and of the features' last column r(s, a);
        `shrink_at(indices) -> [B, M]` the bound's factor (None: 1)."""
        if own_at is None:
            own_at = lambda indices: self.own_item(features_at(indices))  # noqa: E731
        if reward_at is None:
            reward_at = lambda indices: features_at(indices)[..., -1]  # noqa: E731
        state_part, value = self._state(state), self.state_value(state)
        batch = tf.shape(state)[0]

        def scores(j, picked):
            pre = self._position_pre(state_part, j, features_at(picked))

            def chunk_scores(columns):
                indices = tf.broadcast_to(columns[None], [batch, chunk])
                hidden = tf.nn.elu(pre[:, None, :] + own_at(indices))
                learned = tf.einsum("bnh,h->bn", hidden, self.out[j])
                if self.reward_weight is None and self.greedy_weight is None:
                    return learned + value[:, j : j + 1]
                shrink = None if shrink_at is None else shrink_at(indices)
                return self._combine(learned, value[:, j : j + 1], reward_at(indices), shrink, j)

            return map_column_chunks(chunk_scores, n, chunk)

        return scores

    def _position_pre(self, state_part: tf.Tensor, j: int, picked: tf.Tensor) -> tf.Tensor:
        """`[B, H]` W^j s + b^j + sum_{i<j} U^{j,i} e(a^i) for the picked items' features
        `[B, j, d]` (only the (i, j) blocks of U)."""
        pre = state_part[:, j]
        if picked.shape[1]:
            pre += tf.einsum("bmd,dmh->bh", picked, self._pair_kernel()[:, :j, j])
        return pre

    def slate_q(
        self, state: tf.Tensor, slate_items: tf.Tensor, shrink: tf.Tensor | None = None
    ) -> tf.Tensor:
        """`[B, k]`: Q^j(s, a^1..a^j) of a given slate (item features `[B, k, d]`; the bound's
        factor of its items `[B, k]`, None: 1)."""
        pre = self._state(state)  # [B, k(j), H]
        own = self.own_item(slate_items)  # [B, k(j), H]
        prev = self._prev(slate_items)  # [B, i, j, H]
        earlier = tf.linalg.band_part(tf.ones([self.k, self.k]), 0, -1) - tf.eye(self.k)
        prev = tf.einsum("bijh,ij->bjh", prev, earlier)  # only i < j
        hidden = tf.nn.elu(pre + own + prev)
        learned = tf.einsum("bjh,jh->bj", hidden, self.out)
        return self._combine(learned, self.state_value(state), slate_items[..., -1], shrink, None)


@dataclasses.dataclass(frozen=True)
class CDQNConfig:
    """Attributes:
    hidden: units of each Q^j's hidden layer.
    gamma: the discount.
    learning_rate: Adam's learning rate.
    batch_size: the replay minibatch of an update.
    replay_capacity: transitions the replay memory keeps.
    target_update: updates between copies of the online networks to the target ones.
    epsilon_start, epsilon_end, epsilon_steps: epsilon-greedy exploration, decaying linearly
      from start to end over this many selections.
    candidate_chunk: above this many candidates the cascade scores a chunk at a time (0:
      never).
    jit_compile: compile the greedy cascade with XLA (on one replica).
    residual_bound: c: the learned part moves an item's score by at most c in the learned
      reward's units (the bounded residual, module docstring; needs the learned reward);
      0: the unbounded network of the paper.
    uncertainty: with an ensemble of user models, the bound shrinks by exp(-uncertainty *
      the members' std of the item's learned reward) (0: not at all).
    double_q: the next slate of a target is picked by the online networks (double
      Q-learning); False: by the target networks.
    n_step: rewards summed per transition before the bootstrap (1: one-step targets).
    explore: what an exploring selection shows: "slate", a slate of k candidates drawn
      uniformly (the paper's epsilon-greedy); "bound", the top k of r(s, a) + c * U(-1, 1)
      per candidate, a slate the bounded policy could itself pick (with the bounded
      residual; without it, "slate").
    """

    hidden: int = 64
    gamma: float = 0.9
    learning_rate: float = 1e-3
    batch_size: int = 256
    replay_capacity: int = 100_000
    target_update: int = 100
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_steps: int = 1000
    candidate_chunk: int = 2048
    jit_compile: bool = True
    residual_bound: float = 1.0
    uncertainty: float = 1.0
    double_q: bool = True
    n_step: int = 1
    explore: str = "slate"

    def __post_init__(self):
        config_checks.check(
            self,
            "a positive integer",
            "hidden",
            "batch_size",
            "replay_capacity",
            "target_update",
            "epsilon_steps",
            "n_step",
        )
        config_checks.check(self, "a non-negative integer", "candidate_chunk")
        config_checks.check(self, "a non-negative number", "residual_bound", "uncertainty")
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(self, "a number in [0, 1]", "gamma", "epsilon_start", "epsilon_end")
        config_checks.check_choice(self, "explore", EXPLORATIONS)


@register("cdqn")
class CascadingDQN(Policy):
    """The cascading DQN policy with a replay buffer, a target network and epsilon-greedy
    exploration (epsilon decays linearly from `epsilon_start` to `epsilon_end` over
    `epsilon_steps` selections).

    A candidate is described by its item features and, when `reward_model` is given, by the
    learned reward r(s, a) of the simulator's user model that the policy is trained in (the
    model-based setting of the paper: the recommender owns that model). In another simulator
    the policy keeps using its own model's r, as GAN-Greedy does. With `residual_bound` > 0
    the Q-functions are GAN-Greedy's score plus a bounded learned part (module docstring);
    without a reward model the bound does not apply (there is no greedy score to stay near).
    """

    learns = True

    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int = 0,
        config: CDQNConfig = CDQNConfig(),
        *,
        n_candidates: int,
        history_length: int,
        reward_model=None,
        ensemble_models: Sequence = (),
        strategy: tf.distribute.Strategy | None = None,
    ):
        """n_candidates, history_length: the simulator's candidate set and history widths
        (the replay memory's shapes); reward_model: the user model whose r(s, a) is each
        candidate's last feature (None: item features alone); ensemble_models: the user
        models of an ensemble simulator (two or more), whose disagreement on r(s, a) shrinks
        the residual's bound (`ganrl.policy.residual`)."""
        super().__init__(features, k, seed)
        hidden, learning_rate = config.hidden, config.learning_rate
        self.config = config
        # Under a tf.distribute strategy each replica updates on its share of every replay
        # minibatch and the optimiser sums the replicas' gradients (the loss is normalised by
        # the global minibatch); acting and simulation run in the cross-replica context.
        self.strategy = strategy or tf.distribute.get_strategy()
        self.reward_model = reward_model
        self.candidate_chunk = config.candidate_chunk
        tf.keras.utils.set_random_seed(seed)
        self.gamma, self.batch_size = config.gamma, config.batch_size
        self.target_update = config.target_update
        self.epsilon = (config.epsilon_start, config.epsilon_end, config.epsilon_steps)
        residual = reward_model is not None
        bound = config.residual_bound if residual else 0.0
        self.gamma_n = config.gamma**config.n_step  # the bootstrap's discount
        self.double_q, self.n_step = config.double_q, config.n_step
        # The members whose disagreement shrinks the bound (none: a single model).
        self.ensemble_models = (
            tuple(ensemble_models)
            if bound and config.uncertainty and len(ensemble_models) > 1
            else ()
        )
        self.uncertainty = config.uncertainty
        self.explore_bound = config.explore == "bound" and bool(bound)
        self._pending: list[dict] = []  # the running episodes' last n_step - 1 transitions
        # The last observations' encoded user-model states (`_encoded_of`) and their nesting.
        self._encodings: list[tuple[Observation, list]] = []
        self._structure: list | None = None
        with self.strategy.scope():
            self.q = CascadingQNetwork(k, hidden, residual, bound, name="q")
            self.target = CascadingQNetwork(k, hidden, residual, bound, name="target")
            item_dim = features.item_dim + (1 if reward_model is not None else 0)
            for net in (self.q, self.target):
                net.build_for(features.state_dim, item_dim)
            self.target.set_weights(self.q.get_weights())
            self.optimizer = keras.optimizers.Adam(learning_rate)
            self.optimizer.build(self.q.trainable_variables)
            self.selections = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.replay = ReplayBuffer(config.replay_capacity, history_length, n_candidates, k, seed)
        # The greedy cascade compiled by XLA (one compilation per batch and candidate-set
        # shape): it fuses each position's add, ELU and output into one pass over the
        # users x candidates x hidden values instead of three, the bulk of a slate's cost.
        # Under a multi-replica strategy the cascade stays a plain graph.
        jit = config.jit_compile and self.strategy.num_replicas_in_sync == 1
        self._greedy = tf.function(self._greedy_cascade, jit_compile=jit, reduce_retracing=True)

    def fine_tuning_copy(self) -> "CascadingDQN":
        """A copy that keeps learning from this policy's networks, optimiser and replay
        memory (shared, not cloned) but counts its own selections, starting at the end of
        the epsilon schedule: it explores at `epsilon_end` (online fine-tuning)."""
        tuned = copy.copy(self)
        tuned.selections = tf.Variable(self.epsilon[2], dtype=tf.int64)
        tuned._pending, tuned._encodings = [], []
        return tuned

    def current_epsilon(self) -> float:
        start, end, steps = self.epsilon
        frac = min(1.0, float(self.selections.numpy()) / max(steps, 1))
        return start + frac * (end - start)

    def _cascade(
        self,
        history: tf.Tensor,
        candidates: tf.Tensor,
        net: CascadingQNetwork | None = None,
        events: tf.Tensor | None = None,
        encoded: Sequence | None = None,
    ) -> tuple[Callable, Callable, tf.Tensor, Callable | None]:
        """The position scorer of `net` (default: the online network) for these users and
        candidates, the function `indices [B, M] -> [B, M, d (+1)]` of the candidates'
        features (item features and the learned reward r(s, a)), the state, and the function
        `indices -> [B, M]` of the bound's factor u(s, a) (None with a single user model).
        Above `candidate_chunk` candidates (or when N is unknown) nothing of size N x d is
        made: the scorer works chunk by chunk. The learned reward reads the users' recent
        display sets `events` when known, or the user models' states `encoded`
        (`_encode`: the replay memory keeps them); the state is the clicks'."""
        net = net or self.q
        state = self.features.state(history)
        n = candidates.shape[1]
        chunked = bool(self.candidate_chunk) and (n is None or n > self.candidate_chunk)
        rewards = None
        if self.reward_model is not None:
            from ganrl.policy.heuristics import learned_rewards

            rewards = learned_rewards(
                self.reward_model,
                history,
                candidates,
                chunk=self.candidate_chunk if chunked else 0,
                events=events,
                encoded=None if encoded is None else encoded[0],
            )
        shrink_at = None
        if self.ensemble_models:
            shrink = ensemble_shrink(
                self.ensemble_models,
                history,
                candidates,
                self.uncertainty,
                self.candidate_chunk if chunked else 0,
                events,
                None if encoded is None else encoded[1:],
            )  # [B, N]

            def shrink_at(indices):
                return tf.gather(shrink, indices, batch_dims=1)

        def features_at(indices):
            feats = self.features.items(tf.gather(candidates, indices, batch_dims=1))
            if rewards is None:
                return feats
            return tf.concat([feats, tf.gather(rewards, indices, batch_dims=1)[..., None]], -1)

        if chunked:
            # D e(a) = D_items e_a (+ D_r r): the items' part projected once per item.
            kernel = net.own_item.kernel
            table = tf.matmul(self.features.item_table, kernel[: self.features.item_dim])

            def reward_at(indices):
                return tf.gather(rewards, indices, batch_dims=1)

            def own_at(indices):
                own = tf.gather(table, tf.gather(candidates, indices, batch_dims=1))
                if rewards is None:
                    return own
                return own + reward_at(indices)[..., None] * kernel[-1]

            scorer = net.chunked_position_scorer(
                state,
                tf.shape(candidates)[1],
                features_at,
                self.candidate_chunk,
                own_at,
                reward_at if rewards is not None else None,
                shrink_at,
            )
        else:
            all_columns = tf.broadcast_to(tf.range(n)[None], tf.shape(candidates))
            scorer = net.position_scorer(
                state,
                features_at(all_columns),
                None if shrink_at is None else shrink_at(all_columns),
            )
        return scorer, features_at, state, shrink_at

    def select_graph(self, observation: Observation) -> tf.Tensor:
        """The greedy cascade, traceable (for exports): `[B, k]` candidate indices."""
        candidates = observation.candidates
        scorer, _, _, _ = self._cascade(observation.history, candidates, events=observation.events)
        n = candidates.shape[1] if candidates.shape[1] is not None else tf.shape(candidates)[1]
        return cascade_select(scorer, tf.shape(candidates)[0], n, self.k)

    def _greedy_cascade(self, history, candidates, encoded=None):
        scorer, _, _, _ = self._cascade(history, candidates, encoded=encoded)
        n = candidates.shape[1] if candidates.shape[1] is not None else tf.shape(candidates)[1]
        return cascade_select(scorer, tf.shape(candidates)[0], n, self.k)

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        # The user models' states are encoded outside the compiled cascade: replaying the
        # clicks and display sets unrolls one step per event, which XLA would compile again
        # for every batch size (about 30 s each), while `_encode` is one graph for all.
        encoded = None if self.reward_model is None else self._encoded_of(observation)
        slate = self._greedy(observation.history, observation.candidates, encoded)
        if explore:
            eps = self.current_epsilon()
            self.selections.assign_add(1)
            b, n = observation.candidates.shape
            if self.explore_bound:
                random = self._bound_exploration(observation, encoded)
            else:
                random = np.argpartition(self.rng.random((b, n)), self.k - 1, axis=1)[:, : self.k]
            use_random = self.rng.random(b) < eps
            slate = np.where(use_random[:, None], random, slate.numpy())
            slate = tf.constant(slate, tf.int32)
        return slate

    def _bound_exploration(self, observation: Observation, encoded: Sequence) -> np.ndarray:
        """`[B, k]` the top k of r(s, a) + c * U(-1, 1) (`explore="bound"`): slates that differ
        from GAN-Greedy's only where the bounded policy could differ from it, in the cascade's
        order (best first)."""
        from ganrl.policy.heuristics import learned_rewards

        candidates = observation.candidates
        n = candidates.shape[1]
        chunk = self.candidate_chunk if self.candidate_chunk and n > self.candidate_chunk else 0
        rewards = learned_rewards(
            self.reward_model, observation.history, candidates, chunk, encoded=encoded[0]
        ).numpy()
        noisy = rewards + self.q.residual_bound * self.rng.uniform(-1.0, 1.0, rewards.shape)
        top = np.argpartition(-noisy, self.k - 1, axis=1)[:, : self.k]
        order = np.argsort(-np.take_along_axis(noisy, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)

    # -- The user models' states, kept in the replay memory --------------------------------
    # r(s, a) (and each ensemble member's, for the bound's shrinking) reads the state the
    # user's clicks and recent display sets lead to. The user models are frozen while the
    # policy learns, so each transition keeps the encoded states of its two states
    # (`encoded_state`, flattened into fields "encoded_<j>" and "next_encoded_<j>") and an
    # update reads them instead of replaying the events of its minibatch twice.
    def _user_models(self) -> tuple:
        return (self.reward_model, *self.ensemble_models)

    @tf.function(reduce_retracing=True)
    def _encode(self, history, events=None):
        """Each user model's `encoded_state`; a member that is also part of the reward model
        (a `MeanReward` of the ensemble's members) is encoded once."""
        from ganrl.policy.heuristics import encoded_states

        return encoded_states(self._user_models(), history, events)

    def _encoded_of(self, observation: Observation) -> list:
        """`_encode` of an observation. A step's observation is selected for, then observed
        as the transition's next state and as the next transition's state: the last two
        are remembered, so each is encoded once."""
        for seen, encoded in self._encodings:
            if seen is observation:
                return encoded
        encoded = self._encode(observation.history, observation.events)
        self._encodings = [*self._encodings[-1:], (observation, encoded)]
        self._structure = encoded
        return encoded

    def _encoded_fields(self, observation: Observation) -> dict[str, np.ndarray]:
        """The flattened `_encode` of an observation, one field per tensor."""
        leaves = tf.nest.flatten(self._encoded_of(observation))
        return {f"encoded_{j}": leaf.numpy() for j, leaf in enumerate(leaves)}

    def _encoded_structure(self) -> list:
        """The nesting of `_encode`'s output (the last one, or traced on one empty
        history)."""
        if self._structure is None:
            history = tf.fill([1, self.replay.data["history"].shape[1]], -1)
            self._structure = self._encode(history)
        return self._structure

    def _minibatch(self, rows: dict[str, np.ndarray]) -> dict:
        """Sampled replay rows as `_replica_update`'s arguments: the encoded states packed
        back into their nesting (fields it does not read, such as the recent display sets
        an older memory kept, are dropped)."""
        batch = {
            key: rows[key]
            for key in (
                "history",
                "candidates",
                "slate",
                "reward",
                "next_history",
                "next_candidates",
                "done",
            )
        }
        if self.reward_model is not None:
            structure = self._encoded_structure()
            count = len(tf.nest.flatten(structure))
            for name in ("encoded", "next_encoded"):
                leaves = [rows[f"{name}_{j}"] for j in range(count)]
                batch[name] = tf.nest.pack_sequence_as(structure, leaves)
        return batch

    def load_numpy_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `numpy_state` returned. A memory saved before it kept the user
        models' states gets them now, replayed from each row's clicks and the recent display
        sets it kept (its clicks alone where it kept none)."""
        super().load_numpy_state(state)
        if self.reward_model is None or "replay_data_encoded_0" in state:
            return
        data, size = self.replay.data, self.replay.size
        for start in range(0, size, 1024):
            rows = slice(start, min(size, start + 1024))
            for prefix in ("", "next_"):
                events = data.get(f"{prefix}events")
                observed = Observation(
                    tf.constant(data[f"{prefix}history"][rows]),
                    tf.constant(data[f"{prefix}candidates"][rows]),
                    0,
                    events=None if events is None else tf.constant(events[rows]),
                )
                for key, value in self._encoded_fields(observed).items():
                    if f"{prefix}{key}" not in data:
                        self.replay._allocate(f"{prefix}{key}", value)
                    data[f"{prefix}{key}"][rows] = value

    def observe(self, observation, slate, reward, clicked_index, next_observation, done):
        """Stores the transition of n_step steps ago, its reward the discounted sum of the
        n_step rewards since (`n_step_return`) and its next state this one; at the episode's
        end, every pending transition with the rewards up to the end and no bootstrap.

        Only users still there when shown the slate count (`transition_flags`); a transition
        whose window holds a user's last slate (she left, or the episode ended) is terminal,
        and its return stops there (a departed user's rewards are 0)."""
        valid, terminal = transition_flags(observation, next_observation, done)
        step = {
            "history": observation.history.numpy(),
            "candidates": observation.candidates.numpy(),
            "slate": np.asarray(slate),
            "reward": np.asarray(reward, np.float32),
            "valid": valid,
            "terminal": terminal,
        }
        if self.reward_model is not None:
            step.update(self._encoded_fields(observation))
        self._pending.append(step)
        if not done and len(self._pending) < self.n_step:
            return
        ready = self._pending if done else self._pending[:1]
        rewards = np.stack([step["reward"] for step in self._pending])
        terminals = np.stack([step["terminal"] for step in self._pending])
        next_history = next_observation.history.numpy()
        next_candidates = next_observation.candidates.numpy()
        next_encoded = {}
        if self.reward_model is not None:
            next_encoded = {
                f"next_{key}": value
                for key, value in self._encoded_fields(next_observation).items()
            }
        for i, step in enumerate(ready):
            keep = step["valid"]
            encoded = {
                key: value[keep]
                for key, value in {**step, **next_encoded}.items()
                if key.startswith(("encoded_", "next_encoded_"))
            }
            self.replay.add(
                history=step["history"][keep],
                candidates=step["candidates"][keep],
                slate=step["slate"][keep],
                reward=n_step_return(rewards[i:], self.gamma)[keep],
                next_history=next_history[keep],
                next_candidates=next_candidates[keep],
                done=terminals[i:].max(axis=0)[keep],
                **encoded,
            )
        self._pending = [] if done else self._pending[1:]

    def _replica_update(
        self,
        history,
        candidates,
        slate,
        reward,
        next_history,
        next_candidates,
        done,
        encoded=None,
        next_encoded=None,
    ):
        """One replica's share of an update; returns its part of the global mean loss.
        `encoded`, `next_encoded`: the user models' states (`_encode`) at both states."""
        next_q = self.next_q(next_history, next_candidates, encoded=next_encoded)
        y = tf.stop_gradient(cascading_td_targets(reward, done, next_q, self.gamma_n))
        _, features_at, state, shrink_at = self._cascade(history, candidates, encoded=encoded)
        items = features_at(slate)
        shrink = None if shrink_at is None else shrink_at(slate)
        with tf.GradientTape() as tape:
            q = self.q.slate_q(state, items, shrink)  # [B_replica, k]
            # The mean over the global minibatch of sum_j (y - Q^j)^2.
            loss = tf.reduce_sum(tf.square(y[:, None] - q)) / self.batch_size
        grads = tape.gradient(loss, self.q.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.q.trainable_variables))
        return loss

    def next_q(
        self,
        next_history: tf.Tensor,
        next_candidates: tf.Tensor,
        next_events: tf.Tensor | None = None,
        encoded: Sequence | None = None,
    ) -> tf.Tensor:
        """`[B]` Q^k_target(s', A'*) of the cascade's slate A'* at the next states (their
        recent display sets `next_events`, or the user models' states `encoded`), picked by
        the online networks with `double_q`, else by the target networks."""
        picker = self.q if self.double_q else self.target
        scorer, features_at, state, shrink_at = self._cascade(
            next_history, next_candidates, picker, next_events, encoded
        )
        slate = cascade_select(
            scorer, tf.shape(next_candidates)[0], next_candidates.shape[1], self.k
        )
        shrink = None if shrink_at is None else shrink_at(slate)
        return self.target.slate_q(state, features_at(slate), shrink)[:, -1]

    @tf.function(reduce_retracing=True)
    def _update(self, batch):
        per_replica = self.strategy.run(lambda b: self._replica_update(**b), args=(batch,))
        return self.strategy.reduce("SUM", per_replica, axis=None)

    def _distribute(self, batch: dict[str, np.ndarray]):
        """The global minibatch split row-wise over the replicas (every worker sampled the
        same one: same seeds, same simulator)."""
        n = self.strategy.num_replicas_in_sync

        def shard(context):
            rows = np.array_split(np.arange(self.batch_size), n)[context.replica_id_in_sync_group]
            return tf.nest.map_structure(lambda v: tf.constant(v[rows]), batch)

        if n == 1:
            return tf.nest.map_structure(tf.constant, batch)
        return self.strategy.experimental_distribute_values_from_function(shard)

    def train_step(self) -> dict:
        if self.replay.size < self.batch_size:
            return {}
        batch = self._minibatch(self.replay.sample(self.batch_size))
        loss = self._update(self._distribute(batch))
        self.updates.assign_add(1)
        if int(self.updates.numpy()) % self.target_update == 0:
            self.target.set_weights(self.q.get_weights())
        return {"loss": float(loss)}

    def checkpoint_objects(self) -> dict:
        from ganrl.user_model.model import checkpoint_variables

        return dict(
            checkpoint_variables(q=self.q, target=self.target, opt=self.optimizer),
            selections=self.selections,
            updates=self.updates,
        )
