"""What every policy looks like: seeded, stateful across an episode, acting in a MineRL-style Dict space."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from gymnasium.spaces import Dict


class Policy(Protocol):
    action_space: Dict

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (and reseed, if a seed is given)."""

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """The action to take at this observation."""
