"""The policy interface, the item/state features policies share, and the name registry."""

from __future__ import annotations

import abc
import io
from typing import Callable

import numpy as np
import tensorflow as tf

from ganrl.policy.replay import TransitionMemory, generator_state, set_generator_state
from ganrl.simulator.simulator import Observation


class PolicyFeatures:
    """Fixed item features and a simple history encoding for policies.

    Items are described by what the training user model knows of them (`from_user_model`:
    its item embeddings and training statistics); a user's state is the mean of her recent
    clicks' features and the most recent one's. Policies see only these and the raw
    observation, never a simulator's internal state, so they run in any simulator.
    """

    def __init__(self, item_table: np.ndarray):
        self.item_table = tf.constant(item_table, tf.float32)  # [n_items, d]
        self.item_dim = int(item_table.shape[1])
        self.state_dim = 2 * self.item_dim

    @classmethod
    def from_user_model(cls, model) -> "PolicyFeatures":
        """The user model's `item_descriptors`, each column standardised (zero mean, unit
        variance; constant columns become 0): trained embeddings are small (std ~0.05), and
        regularised linear policies (LinUCB's ridge, W&D-LR) would otherwise see little but
        their norms."""
        table = np.asarray(model.item_descriptors(), np.float64)
        std = table.std(axis=0)
        table = (table - table.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
        return cls(table.astype(np.float32))

    def items(self, ids: tf.Tensor) -> tf.Tensor:
        """ids `[...]` -> `[..., d]`."""
        return tf.gather(self.item_table, ids)

    def state(self, history: tf.Tensor) -> tf.Tensor:
        """history `[B, H]` (-1 padded, most recent first) -> `[B, 2d]`."""
        mask = tf.cast(history >= 0, tf.float32)[..., None]
        feats = self.items(tf.maximum(history, 0)) * mask
        mean = tf.reduce_sum(feats, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        return tf.concat([mean, feats[:, 0]], axis=-1)


class Policy(abc.ABC):
    """Chooses a slate of k candidates for every user of a batch.

    `select` returns `[B, k]` indices into `observation.candidates`, without repeats. Learning
    policies also take `observe` (one batched transition) and `train_step`. A policy with
    settings takes them as its own frozen config dataclass (checked by `ganrl.config_checks`)
    and the components it needs (a reward model, the training logs) as keyword arguments;
    `ganrl.policy.runner.make_policy` builds each from the protocol's config.
    """

    learns: bool = False
    replay: TransitionMemory | None = None  # a learning policy's replay memory, if it has one
    # True for a policy whose `observe` credits the reward to the clicked item alone (a
    # bandit's per-item target): it must observe the sampled reward, whose expectation per
    # item is that item's click probability times its pay, never a slate's expected reward.
    credits_clicked_item: bool = False

    def __init__(self, features: PolicyFeatures, k: int, seed: int = 0):
        self.features = features
        self.k = k
        self.rng = np.random.default_rng(seed)

    @abc.abstractmethod
    def select(self, observation: Observation, explore: bool = False) -> tf.Tensor:
        """`[B, k]` candidate indices."""

    def observe(
        self,
        observation: Observation,
        slate: tf.Tensor,
        reward: tf.Tensor,
        clicked_index: tf.Tensor,
        next_observation: Observation,
        done: bool,
    ) -> None:
        """Records one batched transition (learning policies)."""

    def train_step(self) -> dict:
        """One update; returns named scalars (learning policies)."""
        return {}

    def checkpoint_objects(self) -> dict:
        """Trackable objects that make up the policy's state, for checkpoints."""
        return {}

    def numpy_state(self) -> dict[str, np.ndarray]:
        """What the policy keeps outside TF variables: its random stream (exploration,
        minibatch order) and its replay memory, if any. A resumable checkpoint saves it
        (`NumpyState`), so that a resumed run explores and samples as an uninterrupted one."""
        state = {"rng": generator_state(self.rng)}
        if self.replay is not None:
            state.update({f"replay_{key}": v for key, v in self.replay.state().items()})
        return state

    def load_numpy_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `numpy_state` returned."""
        set_generator_state(self.rng, state["rng"])
        if self.replay is not None:
            self.replay.load_state(
                {
                    key.removeprefix("replay_"): v
                    for key, v in state.items()
                    if key.startswith("replay_")
                }
            )


def transition_flags(
    observation: Observation, next_observation: Observation, done: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Which users' transitions count and where they end, for learners.

    Returns:
      valid `[B]` bool: the user was still in her session when shown the slate (a departed
      user's steps carry no weight); terminal `[B]` float32: 1 where her session ended with
      this slate (she left, or the episode ended), the (1 - terminal) of bootstrapped targets.
    """
    b = int(observation.history.shape[0])
    valid = np.ones(b, bool) if observation.alive is None else np.asarray(observation.alive)
    stays = (
        np.ones(b, bool) if next_observation.alive is None else np.asarray(next_observation.alive)
    )
    terminal = np.where(stays & (not done), 0.0, 1.0).astype(np.float32)
    return valid, terminal


class NumpyState(tf.train.experimental.PythonState):
    """A policy's `numpy_state` inside a `tf.train.Checkpoint`: written with the variables in
    the same checkpoint (so as atomically: a kill never leaves weights and replay memory of
    different episodes) and restored with them.

    The replay memory's filled rows are stored uncompressed: a checkpoint of a full default
    memory (100,000 transitions) holds 100,000 x (2 x (history_length + n_candidates) + k + 2)
    4-byte values, and a save briefly needs that much memory again.
    """

    def __init__(self, policy: Policy):
        self.policy = policy

    def serialize(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **self.policy.numpy_state())
        return buffer.getvalue()

    def deserialize(self, string_value: bytes) -> None:
        with np.load(io.BytesIO(string_value), allow_pickle=False) as arrays:
            self.policy.load_numpy_state({key: arrays[key] for key in arrays.files})


def map_column_chunks(
    fn: Callable[[tf.Tensor], tf.Tensor], n: int | tf.Tensor, chunk: int
) -> tf.Tensor:
    """`[B, n]` scores from `fn(columns [chunk]) -> [B, chunk]`, one chunk of columns at a time.

    Memory is that of one chunk, not of all n columns: how policies score 100,000+ candidates
    without a users x candidates x features tensor. The last chunk repeats column n - 1 and its
    extra scores are dropped.
    """
    n_chunks = (n + chunk - 1) // chunk

    def one(c):
        return fn(tf.minimum(c * chunk + tf.range(chunk), n - 1))

    out = tf.map_fn(
        one, tf.range(n_chunks), fn_output_signature=tf.float32, parallel_iterations=1
    )  # [chunks, B, chunk]
    batch = tf.shape(out)[1]
    return tf.reshape(tf.transpose(out, [1, 0, 2]), [batch, n_chunks * chunk])[:, :n]


def top_k_slate(scores: tf.Tensor, k: int) -> tf.Tensor:
    """`[B, N]` scores -> `[B, k]` indices of the k best, best first (ties: lowest index)."""
    return tf.math.top_k(scores, k).indices


POLICIES: dict[str, Callable[..., Policy]] = {}


def register(name: str):
    """Class decorator: adds a policy class to `POLICIES` under `name`."""

    def wrap(cls):
        POLICIES[name] = cls
        cls.name = name
        return cls

    return wrap
