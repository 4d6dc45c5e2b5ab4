"""Ring-buffer replay memories of batched transitions (numpy, vectorised)."""

from __future__ import annotations

import json

import numpy as np


def generator_state(rng: np.random.Generator) -> np.ndarray:
    """The state of a numpy random generator as a 0-d string array (for `np.savez`)."""
    return np.array(json.dumps(rng.bit_generator.state))


def set_generator_state(rng: np.random.Generator, state: np.ndarray) -> None:
    """Puts `rng` back in a state from `generator_state`."""
    rng.bit_generator.state = json.loads(str(state))


class TransitionMemory:
    """Named arrays stored row-wise in a ring of `capacity` rows; `add` takes a batch of rows,
    `sample` returns a batch of rows drawn uniformly with replacement.

    A field first seen in `add` (or in a loaded state) joins the declared ones; its rows
    written before are -1 for integers ("unknown", as in `Observation.events`), else 0.

    Args:
      capacity: rows kept (the oldest are overwritten).
      fields: name -> (shape of one row, dtype).
      seed: the sampling stream.
    """

    def __init__(
        self, capacity: int, fields: dict[str, tuple[tuple[int, ...], type]], seed: int = 0
    ):
        self.capacity = capacity
        self.size = 0
        self.cursor = 0
        self.rng = np.random.default_rng(seed)
        self.data = {
            name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in fields.items()
        }

    def add(self, **batch: np.ndarray) -> None:
        """One array `[n, ...]` per field: n rows."""
        n = len(next(iter(batch.values())))
        rows = (self.cursor + np.arange(n)) % self.capacity
        for key, value in batch.items():
            if key not in self.data:
                self._allocate(key, np.asarray(value))
            self.data[key][rows] = value
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        rows = self.rng.integers(0, self.size, batch_size)
        return {key: value[rows] for key, value in self.data.items()}

    def state(self) -> dict[str, np.ndarray]:
        """The filled rows, the ring's position and the sampling stream, as arrays (what a
        resumable checkpoint saves: rows beyond `size` were never written)."""
        return {
            "size": np.array(self.size),
            "cursor": np.array(self.cursor),
            "rng": generator_state(self.rng),
            **{f"data_{key}": value[: self.size] for key, value in self.data.items()},
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned."""
        self.size, self.cursor = int(state["size"]), int(state["cursor"])
        set_generator_state(self.rng, state["rng"])
        for key in state:
            if key.startswith("data_") and key[5:] not in self.data:
                self._allocate(key[5:], state[key])
        for key, value in self.data.items():
            if f"data_{key}" in state:
                value[: self.size] = state[f"data_{key}"]
            else:  # a field added after the state was saved: unknown in its rows
                value[: self.size] = -1 if np.issubdtype(value.dtype, np.integer) else 0

    def _allocate(self, key: str, rows: np.ndarray) -> None:
        """A new field shaped as `rows [n, ...]`, unknown (-1 or 0) everywhere."""
        fill = -1 if np.issubdtype(rows.dtype, np.integer) else 0
        self.data[key] = np.full((self.capacity, *rows.shape[1:]), fill, rows.dtype)


class ReplayBuffer(TransitionMemory):
    """Transitions of slates: history, candidates, slate, reward, next history, next
    candidates, done."""

    def __init__(
        self, capacity: int, history_length: int, n_candidates: int, k: int, seed: int = 0
    ):
        super().__init__(
            capacity,
            {
                "history": ((history_length,), np.int32),
                "candidates": ((n_candidates,), np.int32),
                "slate": ((k,), np.int32),
                "reward": ((), np.float32),
                "next_history": ((history_length,), np.int32),
                "next_candidates": ((n_candidates,), np.int32),
                "done": ((), np.float32),
            },
            seed,
        )
