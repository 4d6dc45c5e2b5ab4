"""Speed of the cascading DQN's slate choice and of the batched simulator.

  python benchmarks/bench_policy.py

Reports the time to choose a k=10 slate among 1,000, 10,000 and 100,000 candidates for 256
users in one batched call (target: under 200 ms for 1,000; above `candidate_chunk` = 2,048
candidates the cascade scores them in chunks, so memory stays bounded: the peak RSS after each
size is reported), and the simulator's user-steps per second (target: at least 50,000), with
untrained networks of the default sizes (timing does not depend on the weights), and
GAN-Greedy's slate from the clicks alone and with the users' recent display sets.
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganrl.data.dataset import ItemFeatures  # noqa: E402
from ganrl.policy.base import PolicyFeatures  # noqa: E402
from ganrl.policy.cdqn import CascadingDQN, CDQNConfig  # noqa: E402
from ganrl.simulator.simulator import Observation, Simulator, SimulatorConfig  # noqa: E402
from ganrl.user_model import LoadedUserModel  # noqa: E402
from ganrl.user_model.model import ModelConfig, UserModel  # noqa: E402


def timed(fn, repeats: int = 5) -> float:
    fn()  # trace
    tic = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - tic) / repeats


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    rng = np.random.default_rng(0)
    out = {}
    for n_items in (1000, 10000, 100000):
        features = PolicyFeatures(rng.normal(size=(n_items, 32)).astype(np.float32))
        policy = CascadingDQN(
            features,
            k=10,
            config=CDQNConfig(replay_capacity=10),
            n_candidates=n_items,
            history_length=10,
        )
        obs = Observation(
            tf.constant(rng.integers(-1, n_items, (256, 10)), tf.int32),
            tf.tile(tf.range(n_items)[None], [256, 1]),
            0,
        )
        seconds = timed(lambda: policy.select(obs).numpy(), repeats=5 if n_items < 1e5 else 2)
        out[f"slate_k10_{n_items}_candidates_256_users_ms"] = 1000 * seconds
        out[f"peak_rss_mb_after_{n_items}"] = peak_rss_mb()
    features = ItemFeatures(1000)
    model = UserModel(features, ModelConfig(user_model="LSTM"), has_no_click=True)
    sim = Simulator(
        LoadedUserModel(model, model, {}, features, ""),
        SimulatorConfig(k=10, n_candidates=100, horizon=10**9),
    )
    users = 4096
    obs = sim.reset(users)
    slate = tf.tile(tf.range(10)[None], [users, 1])

    def one_step():
        nonlocal obs
        obs = sim.step(obs, slate).observation

    seconds = timed(one_step, repeats=20)
    out["simulator_user_steps_per_second"] = users / seconds
    out.update(gan_greedy_with_events(features, rng))
    out.update(cdqn_first_slates(features, rng))
    print(json.dumps(out, indent=2))


def gan_greedy_with_events(features: ItemFeatures, rng: np.random.Generator) -> dict:
    """GAN-Greedy's k=10 slate among 1,000 candidates for 256 users, from the clicks alone and
    with 10 recent display sets of 10 items (`Observation.events`), under a user model with
    the parts that read display sets (`history_features`, `choice_history`)."""
    from ganrl.policy.heuristics import GanGreedy

    config = ModelConfig(user_model="LSTM", history_features=True, choice_history=True)
    model = UserModel(features, config, has_no_click=True)
    policy = GanGreedy(PolicyFeatures(np.zeros((1000, 1), np.float32)), 10, reward_model=model)
    users, n = 256, 1000
    history = tf.constant(rng.integers(-1, n, (users, 10)), tf.int32)
    candidates = tf.tile(tf.range(n)[None], [users, 1])
    shown = rng.integers(0, n, (users, 10, 10))
    clicks = np.where(rng.random((users, 10)) < 0.5, shown[:, :, 0], -1)
    events = tf.constant(np.concatenate([clicks[:, :, None], shown], axis=2), tf.int32)
    out = {}
    for name, recent in (("clicks_alone", None), ("with_events", events)):
        obs = Observation(history, candidates, 0, events=recent)
        out[f"gan_greedy_slate_{name}_ms"] = 1000 * timed(lambda o=obs: policy.select(o).numpy())
    return out


def cdqn_first_slates(features: ItemFeatures, rng: np.random.Generator) -> dict:
    """An untrained CDQN's k=5 slate among 1,000 candidates with the learned reward of a user
    model that reads display sets: the first call for each batch shape (tracing and XLA
    compilation included) and the next one, for 64 and 256 users, from the clicks alone and
    with 10 recent display sets of 10 items."""
    import time

    config = ModelConfig(user_model="LSTM", history_features=True, choice_history=True)
    model = UserModel(features, config, has_no_click=True)
    n = 1000
    policy = CascadingDQN(
        PolicyFeatures(np.zeros((n, 1), np.float32)),
        k=5,
        config=CDQNConfig(replay_capacity=10),
        n_candidates=n,
        history_length=10,
        reward_model=model,
    )
    out = {}
    for users in (64, 256):
        history = tf.constant(rng.integers(-1, n, (users, 10)), tf.int32)
        candidates = tf.tile(tf.range(n)[None], [users, 1])
        shown = rng.integers(0, n, (users, 10, 10))
        clicks = np.where(rng.random((users, 10)) < 0.5, shown[:, :, 0], -1)
        events = tf.constant(np.concatenate([clicks[:, :, None], shown], axis=2), tf.int32)
        for name, recent in (("clicks_alone", None), ("with_events", events)):
            obs = Observation(history, candidates, 0, events=recent)
            for call in ("first", "next"):
                start = time.perf_counter()
                policy.select(obs).numpy()
                out[f"cdqn_{call}_slate_{users}_users_{name}_s"] = time.perf_counter() - start
    return out


if __name__ == "__main__":
    main()
