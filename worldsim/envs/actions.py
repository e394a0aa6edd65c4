"""MineRL 1.0's action space, which every backend, the neural env and every agent speak.

Keys and meanings follow MineRL 1.0: 23 `Discrete(2)` keys plus `camera`, a `Box(-180, 180, (2,))` holding
[Δpitch, Δyaw] in degrees, positive pitch looking down and positive yaw turning right. A backend exposes the
subset of keys it can perform, with the same names and types, in MineRL's (sorted) key order.
"""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box, Dict, Discrete

from worldsim.model.actions import ActionCodec, InvalidActionError

__all__ = ["MINERL_KEYS", "minerl_action_space", "restrict_action", "ActionCodec", "InvalidActionError",
           "CAMERA_LIMIT"]

MINERL_BUTTONS = (
    "ESC", "attack", "back", "drop", "forward", *(f"hotbar.{i}" for i in range(1, 10)), "inventory", "jump",
    "left", "pickItem", "right", "sneak", "sprint", "swapHands", "use",
)
MINERL_KEYS = tuple(sorted((*MINERL_BUTTONS, "camera")))
CAMERA_LIMIT = 180.0


def camera_space() -> Box:
    return Box(-CAMERA_LIMIT, CAMERA_LIMIT, shape=(2,), dtype=np.float32)


def minerl_action_space(keys: tuple[str, ...] | list[str] = MINERL_KEYS) -> Dict:
    """The MineRL 1.0 action Dict restricted to `keys` (which must be MineRL key names)."""
    unknown = sorted(set(keys) - set(MINERL_KEYS))
    if unknown:
        raise ValueError(f"not MineRL 1.0 action keys: {unknown}")
    return Dict({k: camera_space() if k == "camera" else Discrete(2) for k in sorted(keys)})


def restrict_action(action: dict, space: Dict) -> dict:
    """`action` as `space` sees it: its keys kept, the rest dropped, keys it lacks released. Why: the real game and a
    dream trained on another game's keys step under one player's input (play --side-by-side, the benches)."""
    noop = ActionCodec(space).noop()
    return {k: action.get(k, noop[k]) for k in space.spaces}
