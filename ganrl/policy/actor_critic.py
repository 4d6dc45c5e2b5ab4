"""Actor-critic agents over candidate sets: PPO (Schulman et al., 2017) and A2C (Mnih et al.,
2016), as projects that train them on a Gym environment of MovieLens do.

Policy: a softmax over the candidates. With the training user model given (its learned reward
r(s, a)) and the bounded residual (`residual_bound` c > 0, the default; issue 18,
`ganrl.policy.residual`):
  logit(s, a) = alpha * (r(s, a) + c * u(s, a) * tanh(h(s, a))),
  h(s, a) = o . elu(W_s s + W_x x_a + b),
alpha = softplus(.) > 0 learned from 1, u(s, a) the shrinking of the bound where an ensemble
of training user models disagrees (1 with one model). s is the policy state
(`PolicyFeatures.state`), x_a the candidate's item features and r(s, a) (the same candidate
description as the cascading DQN's). o starts at 0, so the untrained policy samples in
proportion to exp r and its greedy slate is GAN-Greedy's; the learned part moves a logit by
at most alpha c, so the greedy slate never puts a candidate whose r is more than 2c below
another's before it. With c = 0 (the policy before issue 18) the logit is
h(s, a) + alpha r(s, a), alpha learned from 1 and unbounded; without a reward model, h(s, a)
over the item features alone. A slate of k is k candidates drawn without replacement
(Gumbel top-k: the Plackett-Luce distribution of the softmax), so its log-probability is
  log pi(A | s) = sum_j [logit(a_j) - logsumexp_{a not in a_1..a_{j-1}} logit(a)];
with k = 1 it is a single item. Evaluation (explore=False) takes the k largest logits.
A value head V(s) (an ELU layer and a linear output) is the critic.

Rollouts: `observe` collects the batched transitions; `train_step` updates once the rollout
holds `rollout_steps` steps of the runner's batch of users, or earlier when the episode ends
(a reset brings other users), and then clears it. The last step of a rollout cut short of its
episode's end bootstraps from V(s_{t+1}).
- PPO: GAE(lambda) advantages, normalised; `ppo_epochs` passes of minibatches over the
  rollout maximising the clipped surrogate min(rho A, clip(rho, 1 - eps, 1 + eps) A), with a
  value loss and an entropy bonus (the entropy of the first pick's softmax).
- A2C: n-step returns bootstrapped by V (the rollout is n steps by default, so the first step
  looks n steps ahead and the last one step, as in Mnih et al.); one gradient step on
  -log pi (R - V) + value loss - entropy bonus per rollout.
Defaults: rollout_steps 10 (PPO) and n_steps = rollout_steps = 5 (A2C); PPO clip 0.2,
gae_lambda 0.95, 4 epochs of 4 minibatches; loss weights value_coef 0.5, entropy_coef 0.01;
one Adam optimiser for actor and critic at the runner's learning rate, gamma from the runner.
Candidates are scored all at once (`[B, N, hidden]`), so N should be a sampled candidate set
(`n_candidates`), not a catalogue of 100,000 items.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np
import tensorflow as tf

from ganrl import config_checks
from ganrl.policy.base import Policy, PolicyFeatures, register, transition_flags
from ganrl.policy.residual import Residual, bounded_score, reward_weights
from ganrl.simulator.simulator import Observation

keras = tf.keras
NEG_INF = -1e9


# -- The maths ------------------------------------------------------------------------------


def slate_log_prob(logits: tf.Tensor, slate: tf.Tensor) -> tf.Tensor:
    """log pi(A | s) of slates drawn without replacement (Plackett-Luce).

    Args:
      logits: `[B, N]` candidate logits.
      slate: `[B, k]` candidate indices in the order they were drawn.

    Returns:
      `[B]`.
    """
    n = tf.shape(logits)[1]
    taken = tf.zeros_like(logits, dtype=tf.bool)
    total = tf.zeros(tf.shape(logits)[:1])
    for j in range(slate.shape[1]):
        remaining = tf.where(taken, NEG_INF, logits)
        picked = tf.gather(logits, slate[:, j], batch_dims=1)
        total += picked - tf.reduce_logsumexp(remaining, axis=-1)
        taken |= tf.one_hot(slate[:, j], n, on_value=True, off_value=False)
    return total


def gumbel_top_k(logits: tf.Tensor, k: int, seed: tf.Tensor) -> tf.Tensor:
    """`[B, k]` candidates drawn without replacement from softmax(logits `[B, N]`)."""
    u = tf.random.stateless_uniform(tf.shape(logits), seed, 1e-20, 1.0)
    return tf.math.top_k(logits - tf.math.log(-tf.math.log(u)), k).indices


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalised advantage estimates A_t = sum_i (gamma lam)^i delta_{t+i}, where
    delta_t = r_t + gamma (1 - done_t) V(s_{t+1}) - V(s_t); no credit flows past an episode's
    end. All arguments `[T, B]`; returns `[T, B]`."""
    deltas = rewards + gamma * (1.0 - dones) * next_values - values
    advantages = np.zeros_like(deltas)
    running = np.zeros_like(deltas[0])
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + gamma * lam * (1.0 - dones[t]) * running
        advantages[t] = running
    return advantages


def n_step_returns(
    rewards: np.ndarray, next_values: np.ndarray, dones: np.ndarray, gamma: float, n: int
) -> np.ndarray:
    """R_t = sum_{i<m} gamma^i r_{t+i} + gamma^m V(s_{t+m}), m = min(n, steps to the end of
    the rollout); nothing after an episode's end (no reward, no bootstrap). `next_values[t]`
    is V(s_{t+1}). All arguments `[T, B]`; returns `[T, B]`."""
    horizon = len(rewards)
    returns = np.zeros_like(rewards)
    for t in range(horizon):
        total = np.zeros_like(rewards[0])
        alive = np.ones_like(rewards[0])
        discount = 1.0
        for s in range(t, min(t + n, horizon)):
            total += alive * discount * rewards[s]
            discount *= gamma
            alive = alive * (1.0 - dones[s])
        total += alive * discount * next_values[s]
        returns[t] = total
    return returns


def ppo_clip_loss(
    log_prob: tf.Tensor, old_log_prob: tf.Tensor, advantages: tf.Tensor, clip: float
) -> tf.Tensor:
    """-mean min(rho A, clip(rho, 1 - clip, 1 + clip) A), rho = exp(log_prob - old_log_prob);
    all `[B]`."""
    ratio = tf.exp(log_prob - old_log_prob)
    clipped = tf.clip_by_value(ratio, 1.0 - clip, 1.0 + clip)
    return -tf.reduce_mean(tf.minimum(ratio * advantages, clipped * advantages))


# -- The networks ---------------------------------------------------------------------------


class CandidateActorCritic(keras.Model):
    """Logits over candidates and the state value (see the module docstring).

    Args:
      state_dim, item_dim, hidden: the widths of the state, of a candidate's features and of
        the hidden layers.
      reward_residual: the candidates' last feature is the learned reward r(s, a), which the
        logits add (the untrained policy is then GAN-Greedy's ranking).
      residual_bound: c > 0 (needs `reward_residual`): the bounded form, in which the learned
        part moves a logit by at most alpha c; 0: alpha r plus the unbounded learned part.
    """

    def __init__(
        self,
        state_dim: int,
        item_dim: int,
        hidden: int,
        reward_residual: bool,
        residual_bound: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.residual_bound = float(residual_bound)
        self.state_part = keras.layers.Dense(hidden, name="state")
        self.item_part = keras.layers.Dense(hidden, use_bias=False, name="item")
        self.out = self.add_weight(name="out", shape=(hidden,), initializer="zeros")
        # alpha = softplus(greedy_weight) with the bounded residual.
        self.greedy_weight, self.reward_weight = reward_weights(
            self, (), reward_residual, self.residual_bound
        )
        self.value_hidden = keras.layers.Dense(hidden, activation="elu", name="value_hidden")
        self.value_out = keras.layers.Dense(1, name="value")
        self.state_part.build((None, state_dim))
        self.item_part.build((None, item_dim))
        self.value_hidden.build((None, state_dim))
        self.value_out.build((None, hidden))
        self.built = True

    def logits(
        self, state: tf.Tensor, candidates: tf.Tensor, shrink: tf.Tensor | None = None
    ) -> tf.Tensor:
        """state `[B, S]`, candidate features `[B, N, d]` (last column r when residual) and
        the bound's factor u(s, a) `[B, N]` (None: 1) -> `[B, N]`."""
        hidden = tf.nn.elu(self.state_part(state)[:, None, :] + self.item_part(candidates))
        logits = tf.einsum("bnh,h->bn", hidden, self.out)
        if self.greedy_weight is not None:
            weight = tf.nn.softplus(self.greedy_weight)
            return bounded_score(candidates[..., -1], logits, self.residual_bound, shrink, weight)
        if self.reward_weight is not None:
            logits += self.reward_weight * candidates[..., -1]
        return logits

    def value(self, state: tf.Tensor) -> tf.Tensor:
        """`[B]` V(s)."""
        return self.value_out(self.value_hidden(state))[:, 0]


def _flat(
    batch: dict[str, np.ndarray], keys: tuple[str, ...], valid: np.ndarray | None = None
) -> dict[str, tf.Tensor]:
    """`[T, B, ...]` arrays -> `[T * B, ...]` tensors (only the rows where `valid [T, B]`);
    the users' recent display sets ("events") too when the rollout has them."""
    rows = slice(None) if valid is None else valid.reshape(-1)
    keys = keys + (("events",) if "events" in batch and "history" in keys else ())
    return {k: tf.constant(batch[k].reshape(-1, *batch[k].shape[2:])[rows]) for k in keys}


@dataclasses.dataclass(frozen=True)
class ActorCriticConfig:
    """What PPO and A2C share (the module docstring gives the defaults' reasons).

    Attributes:
      hidden: units of the actor's and the critic's hidden layers.
      gamma: the discount.
      learning_rate: Adam's learning rate (actor and critic).
      value_coef, entropy_coef: the weights of the value loss and the entropy bonus.
      rollout_steps: steps of a rollout between updates.
      residual_bound: c: the learned part moves a logit by at most c in the learned reward's
        units (module docstring; needs the reward model); 0: the unbounded form.
      uncertainty: with an ensemble of user models, the bound shrinks by exp(-uncertainty *
        the members' std of the item's learned reward) (0: not at all).
    """

    hidden: int = 64
    gamma: float = 0.9
    learning_rate: float = 1e-3
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    rollout_steps: int = 10
    residual_bound: float = 1.0
    uncertainty: float = 1.0

    def __post_init__(self):
        config_checks.check(self, "a positive integer", "hidden", "rollout_steps")
        config_checks.check(self, "a positive number", "learning_rate")
        config_checks.check(self, "a number in [0, 1]", "gamma")
        config_checks.check(
            self,
            "a non-negative number",
            "value_coef",
            "entropy_coef",
            "residual_bound",
            "uncertainty",
        )


@dataclasses.dataclass(frozen=True)
class PPOConfig(ActorCriticConfig):
    """Attributes (beside `ActorCriticConfig`'s):
    clip: the surrogate's clipping range.
    gae_lambda: GAE's lambda.
    ppo_epochs, minibatches: passes over a rollout and minibatches per pass.
    """

    clip: float = 0.2
    gae_lambda: float = 0.95
    ppo_epochs: int = 4
    minibatches: int = 4

    def __post_init__(self):
        super().__post_init__()
        config_checks.check(self, "a positive number", "clip")
        config_checks.check(self, "a number in [0, 1]", "gae_lambda")
        config_checks.check(self, "a positive integer", "ppo_epochs", "minibatches")


@dataclasses.dataclass(frozen=True)
class A2CConfig(ActorCriticConfig):
    """Attributes (beside `ActorCriticConfig`'s):
    n_steps: the horizon of the n-step returns.
    rollout_steps: by default as long as the default n_steps.
    """

    n_steps: int = 5
    rollout_steps: int = 5

    def __post_init__(self):
        super().__post_init__()
        config_checks.check(self, "a positive integer", "n_steps")


class _ActorCriticPolicy(Policy):
    """What PPO and A2C share: the network, candidate features, sampling, rollouts."""

    learns = True

    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int,
        config: ActorCriticConfig,
        reward_model=None,
        ensemble_models=(),
    ):
        """reward_model: the user model whose r(s, a) is each candidate's last feature (None:
        item features alone); ensemble_models: the user models of an ensemble simulator (two
        or more), whose disagreement on r(s, a) shrinks the residual's bound."""
        super().__init__(features, k, seed)
        tf.keras.utils.set_random_seed(seed)
        self.reward_model = reward_model
        self.residual = Residual(
            reward_model, config.residual_bound, config.uncertainty, ensemble_models
        )
        self.gamma = config.gamma
        self.value_coef, self.entropy_coef = config.value_coef, config.entropy_coef
        self.rollout_steps = config.rollout_steps
        item_dim = features.item_dim + (1 if reward_model is not None else 0)
        self.net = CandidateActorCritic(
            features.state_dim,
            item_dim,
            config.hidden,
            reward_model is not None,
            self.residual.bound,
            name="actor_critic",
        )
        self.optimizer = keras.optimizers.Adam(config.learning_rate)
        self.optimizer.build(self.net.trainable_variables)
        self.draws = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.rollout: list[dict] = []

    def _inputs(
        self,
        history: tf.Tensor,
        candidates: tf.Tensor,
        events: tf.Tensor | None = None,
        learned: tuple | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        """(`[B, S]` state, `[B, N, d (+1)]` candidate features, `[B, N]` the bound's factor
        u(s, a) or None where it is 1). The learned reward r reads the users' recent display
        sets `events` when known; the state is the clicks'. `learned`: `_learned`'s (r, u)
        when already computed."""
        reward, shrink = (
            learned if learned is not None else self._learned(history, candidates, events)
        )
        feats = self.features.items(candidates)
        if reward is not None:
            feats = tf.concat([feats, reward[..., None]], axis=-1)
        return self.features.state(history), feats, shrink

    def _learned(self, history, candidates, events=None) -> tuple:
        """(`[B, N]` r(s, a) or None without a reward model, `[B, N]` u(s, a) or None): what
        the user models say of the candidates. They are frozen while the policy learns, so
        an update computes these once per rollout, not at every gradient step."""
        if self.reward_model is None:
            return None, None  # no residual either (`Residual` needs the reward model)
        return self.residual.learned(history, candidates, events)

    @tf.function(reduce_retracing=True)
    def _learned_graph(self, history, candidates, events=None):
        return self._learned(history, candidates, events)

    def _with_learned(self, flat: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """A flat rollout with its recent display sets replaced by what the user models
        say of its candidates ("reward", "shrink"; `_learned`), for the gradient steps."""
        events = flat.pop("events", None)
        reward, shrink = self._learned_graph(flat["history"], flat["candidates"], events)
        learned = {"reward": reward, "shrink": shrink}
        return {**flat, **{k: v for k, v in learned.items() if v is not None}}

    @tf.function(reduce_retracing=True)
    def _logits(self, history, candidates, events=None):
        return self.net.logits(*self._inputs(history, candidates, events))

    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        logits = self._logits(observation.history, observation.candidates, observation.events)
        if not explore:
            return tf.math.top_k(logits, self.k).indices
        self.draws.assign_add(1)
        seed = tf.stack([tf.cast(self.draws, tf.int32), tf.constant(int(self.rng.integers(2**30)))])
        return gumbel_top_k(logits, self.k, seed)

    def observe(self, observation, slate, reward, clicked_index, next_observation, done):
        # `done` per user: 1 after her last slate (she left or the episode ended), so no
        # credit flows past it; `valid`: she was there (a departed user's steps get no weight).
        valid, terminal = transition_flags(observation, next_observation, done)
        step = {
            "history": observation.history.numpy(),
            "candidates": observation.candidates.numpy(),
            "slate": np.asarray(slate),
            "reward": np.asarray(reward, np.float32),
            "next_history": next_observation.history.numpy(),
            "done": terminal,
            "valid": valid,
        }
        if observation.events is not None:
            step["events"] = observation.events.numpy()
        self.rollout.append(step)

    @tf.function(reduce_retracing=True)
    def _values(self, history):
        return self.net.value(self.features.state(history))

    def _stacked(self) -> dict[str, np.ndarray]:
        """The rollout as `[T, B, ...]` arrays plus V(s_t) and V(s_{t+1})."""
        batch = {key: np.stack([step[key] for step in self.rollout]) for key in self.rollout[0]}
        shape = batch["reward"].shape
        flat = _flat(batch, ("history", "next_history"))
        batch["value"] = self._values(flat["history"]).numpy().reshape(shape)
        batch["next_value"] = self._values(flat["next_history"]).numpy().reshape(shape)
        return batch

    def _loss_terms(self, history, candidates, slate, learned):
        """(log pi(slate), V(s), mean entropy of the first pick) for flat `[M, ...]` inputs
        (`learned`: `_learned`'s (r, u))."""
        state, feats, shrink = self._inputs(history, candidates, learned=learned)
        logits = self.net.logits(state, feats, shrink)
        log_prob = slate_log_prob(logits, slate)
        probs = tf.nn.softmax(logits)
        entropy = -tf.reduce_mean(tf.reduce_sum(probs * tf.nn.log_softmax(logits), -1))
        return log_prob, self.net.value(state), entropy

    def _gradient_step(self, history, candidates, slate, returns, policy_loss_fn, learned):
        """One step on policy_loss_fn(log pi, V) + value_coef (R - V)^2 - entropy_coef H."""
        with tf.GradientTape() as tape:
            log_prob, value, entropy = self._loss_terms(history, candidates, slate, learned)
            value_loss = tf.reduce_mean(tf.square(returns - value))
            loss = (
                policy_loss_fn(log_prob, value)
                + self.value_coef * value_loss
                - self.entropy_coef * entropy
            )
        grads = tape.gradient(loss, self.net.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables))
        return loss

    def train_step(self) -> dict:
        full = len(self.rollout) >= self.rollout_steps
        if not self.rollout or not (full or self.rollout[-1]["done"].all()):
            return {}
        batch = self._stacked()
        self.rollout = []
        return self._update_rollout(batch)

    @abc.abstractmethod
    def _update_rollout(self, batch: dict[str, np.ndarray]) -> dict:
        """The agent's update on a rollout (`_stacked`); returns named scalars."""

    def checkpoint_objects(self) -> dict:
        from ganrl.user_model.model import checkpoint_variables

        return dict(checkpoint_variables(net=self.net, opt=self.optimizer), draws=self.draws)


@register("ppo")
class PPO(_ActorCriticPolicy):
    """Proximal policy optimisation with the clipped surrogate and GAE (see the module
    docstring)."""

    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int = 0,
        config: PPOConfig = PPOConfig(),
        *,
        reward_model=None,
        ensemble_models=(),
    ):
        super().__init__(features, k, seed, config, reward_model, ensemble_models)
        self.clip, self.gae_lambda = config.clip, config.gae_lambda
        self.ppo_epochs, self.minibatches = config.ppo_epochs, config.minibatches

    @tf.function(reduce_retracing=True)
    def _old_log_prob(self, history, candidates, slate, reward=None, shrink=None):
        state, feats, shrink = self._inputs(history, candidates, learned=(reward, shrink))
        return slate_log_prob(self.net.logits(state, feats, shrink), slate)

    @tf.function(reduce_retracing=True)
    def _ppo_step(
        self,
        history,
        candidates,
        slate,
        old_log_prob,
        advantage,
        returns,
        reward=None,
        shrink=None,
    ):
        return self._gradient_step(
            history,
            candidates,
            slate,
            returns,
            lambda log_prob, _: ppo_clip_loss(log_prob, old_log_prob, advantage, self.clip),
            (reward, shrink),
        )

    def _update_rollout(self, batch):
        advantage = gae(
            batch["reward"],
            batch["value"],
            batch["next_value"],
            batch["done"],
            self.gamma,
            self.gae_lambda,
        )
        batch["returns"] = advantage + batch["value"]
        valid = batch["valid"]
        batch["advantage"] = (advantage - advantage[valid].mean()) / (advantage[valid].std() + 1e-8)
        flat = _flat(batch, ("history", "candidates", "slate", "advantage", "returns"), valid)
        flat = self._with_learned(flat)
        flat["old_log_prob"] = self._old_log_prob(
            flat["history"],
            flat["candidates"],
            flat["slate"],
            flat.get("reward"),
            flat.get("shrink"),
        )
        m = int(flat["slate"].shape[0])
        losses = []
        for _ in range(self.ppo_epochs):
            # Never an empty minibatch (a rollout with fewer valid rows than minibatches, as
            # when few users are left): its mean loss is nan, and Adam would still move the
            # weights by its momentum on a step that saw no data.
            for rows in np.array_split(self.rng.permutation(m), min(self.minibatches, m)):
                part = {k: tf.gather(v, rows) for k, v in flat.items()}
                losses.append(float(self._ppo_step(**part)))
        return {"loss": float(np.mean(losses))}


@register("a2c")
class A2C(_ActorCriticPolicy):
    """Synchronous advantage actor-critic with n-step returns (see the module docstring)."""

    def __init__(
        self,
        features: PolicyFeatures,
        k: int,
        seed: int = 0,
        config: A2CConfig = A2CConfig(),
        *,
        reward_model=None,
        ensemble_models=(),
    ):
        super().__init__(features, k, seed, config, reward_model, ensemble_models)
        self.n_steps = config.n_steps

    @tf.function(reduce_retracing=True)
    def _a2c_step(self, history, candidates, slate, returns, reward=None, shrink=None):
        return self._gradient_step(
            history,
            candidates,
            slate,
            returns,
            lambda log_prob, value: -tf.reduce_mean(log_prob * tf.stop_gradient(returns - value)),
            (reward, shrink),
        )

    def _update_rollout(self, batch):
        batch["returns"] = n_step_returns(
            batch["reward"], batch["next_value"], batch["done"], self.gamma, self.n_steps
        )
        flat = _flat(batch, ("history", "candidates", "slate", "returns"), batch["valid"])
        return {"loss": float(self._a2c_step(**self._with_learned(flat)))}
