"""A Gymnasium-compatible single-user view of the learned simulator.

Observation: a dict with `history` (the user's last `history_length` clicks, most recent first,
-1 padded) and `candidates` (the candidate item ids). Action: k candidate indices
(`MultiDiscrete`); a repeated index shows the item once more in the slate, an action of
another length or an index outside the candidates is refused (`ValueError`). Reward: the
learned reward of the clicked item (or the click indicator). The episode is truncated after
`horizon` steps and terminated when the user leaves (the user model's leave model).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import tensorflow as tf

from ganrl.simulator.simulator import Observation, Simulator, SimulatorConfig
from ganrl.user_model import LoadedUserModel


class RecommendationEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, user_model: LoadedUserModel, config: SimulatorConfig = SimulatorConfig()):
        self.user_model = user_model
        self.sim_config = config
        self.sim = Simulator(user_model, config)
        n_items, n_cand = user_model.n_items, self.sim.n_candidates
        self.observation_space = gym.spaces.Dict(
            {
                "history": gym.spaces.Box(-1, n_items - 1, (config.history_length,), np.int64),
                "candidates": gym.spaces.Box(0, n_items - 1, (n_cand,), np.int64),
            }
        )
        self.action_space = gym.spaces.MultiDiscrete([n_cand] * config.k)
        self._obs = None
        self._ended = False  # the episode has terminated or been truncated

    def _convert(self, obs: Observation) -> dict:
        return {
            "history": obs.history.numpy()[0].astype(np.int64),
            "candidates": obs.candidates.numpy()[0].astype(np.int64),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.rng = tf.random.Generator.from_seed(seed)
        self._obs = self.sim.reset(1)
        self._ended = False
        return self._convert(self._obs), {}

    def step(self, action):
        if self._obs is None or self._ended:
            raise RuntimeError(
                "step() before reset()"
                if self._obs is None
                else "step() after the episode ended (terminated or truncated): call reset() first"
            )
        action = np.asarray(action)
        n_candidates = int(self.action_space.nvec[0])
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action of shape {action.shape}: expected {self.action_space.shape}, the "
                "slate's k candidate indices"
            )
        if not np.issubdtype(action.dtype, np.integer) or (
            action.size and (action.min() < 0 or action.max() >= n_candidates)
        ):
            raise ValueError(
                f"action {action.tolist()}: expected integer candidate indices "
                f"0..{n_candidates - 1}"
            )
        result = self.sim.step(self._obs, tf.constant(action.astype(np.int32)[None, :]))
        self._obs = result.observation
        info = {"clicked_index": int(result.clicked_index.numpy()[0])}
        stays = self._obs.alive is None or bool(np.asarray(self._obs.alive)[0])
        self._ended = bool(result.done)
        return (
            self._convert(self._obs),
            float(result.reward.numpy()[0]),
            bool(result.done) and not stays,  # she left
            bool(result.done) and stays,  # the horizon cut her session
            info,
        )
