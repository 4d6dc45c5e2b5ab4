"""A ring-buffer replay memory of batched transitions (numpy, vectorised)."""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """Stores transitions (history, candidates, slate, reward, next history, next candidates,
    done) row-wise; `add` takes a batch, `sample` returns a batch of rows."""

    def __init__(self, capacity: int, history_length: int, n_candidates: int, k: int,
                 seed: int = 0):
        self.capacity = capacity
        self.size = 0
        self.cursor = 0
        self.rng = np.random.default_rng(seed)
        self.data = {
            "history": np.zeros((capacity, history_length), np.int32),
            "candidates": np.zeros((capacity, n_candidates), np.int32),
            "slate": np.zeros((capacity, k), np.int32),
            "reward": np.zeros(capacity, np.float32),
            "next_history": np.zeros((capacity, history_length), np.int32),
            "next_candidates": np.zeros((capacity, n_candidates), np.int32),
            "done": np.zeros(capacity, np.float32),
        }

    def add(self, **batch: np.ndarray) -> None:
        n = len(batch["reward"])
        rows = (self.cursor + np.arange(n)) % self.capacity
        for key, value in batch.items():
            self.data[key][rows] = value
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        rows = self.rng.integers(0, self.size, batch_size)
        return {key: value[rows] for key, value in self.data.items()}
