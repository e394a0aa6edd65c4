"""Uniform random actions: every key an independent coin flip, camera uniform in ±`max_turn` degrees."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Box, Dict, Discrete


class RandomAgent:
    def __init__(self, action_space: Dict, seed: int | None = None, max_turn: float = 10.0):
        self.action_space = action_space
        self.max_turn = float(max_turn)
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> dict[str, Any]:
        action: dict[str, Any] = {}
        for key, sub in self.action_space.spaces.items():
            if isinstance(sub, Discrete):
                action[key] = np.int64(sub.start + self.rng.integers(sub.n))
            elif isinstance(sub, Box):
                lim = np.minimum(sub.high, self.max_turn) if key == "camera" else sub.high
                low = np.maximum(sub.low, -lim) if key == "camera" else sub.low
                action[key] = self.rng.uniform(low, lim).astype(sub.dtype)
        return action
