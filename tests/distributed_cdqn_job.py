"""A tiny cascading-DQN training job for the distribution tests (a subprocess: logical devices
and TF_CONFIG must be set before TensorFlow starts).

usage: distributed_cdqn_job.py STRATEGY CPU_REPLICAS OUT_NPZ
Fills the replay memory with the same random transitions in every process, takes four
updates and saves the losses and the Q-network's weights.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ganrl.policy.base import PolicyFeatures  # noqa: E402
from ganrl.policy.cdqn import CascadingDQN, CDQNConfig  # noqa: E402
from ganrl.train.distribute import make_strategy  # noqa: E402


def main(strategy_name, cpu_replicas, out):
    strategy = make_strategy(strategy_name, int(cpu_replicas))
    rng = np.random.default_rng(0)
    n_items, n, rows = 20, 6, 32
    features = PolicyFeatures(rng.normal(size=(n_items, 4)).astype(np.float32))
    config = CDQNConfig(
        hidden=8, batch_size=8, replay_capacity=rows, target_update=2, learning_rate=0.01
    )
    policy = CascadingDQN(
        features, 2, seed=3, config=config, n_candidates=n, history_length=3, strategy=strategy
    )
    policy.replay.add(
        history=rng.integers(-1, n_items, (rows, 3)),
        candidates=rng.integers(0, n_items, (rows, n)),
        slate=np.tile([0, 1], (rows, 1)),
        reward=rng.random(rows).astype(np.float32),
        next_history=rng.integers(-1, n_items, (rows, 3)),
        next_candidates=rng.integers(0, n_items, (rows, n)),
        done=(rng.random(rows) < 0.2).astype(np.float32),
    )
    losses = [policy.train_step()["loss"] for _ in range(4)]
    np.savez(out, losses=np.array(losses), *[w.numpy() for w in policy.q.weights])


if __name__ == "__main__":
    main(*sys.argv[1:])
