"""`worldsim/MineRL-<id>`: MineRL 1.0 (the real Java game) behind the Gymnasium API and worldsim's conventions.

MineRL speaks the old `gym` API (reset -> obs, step -> obs, reward, done, info) and renders 360x640 `pov`
frames. This adapter turns it into a `gymnasium.Env` with the same action Dict as every other backend and
`pov` resized to `size` x `size` (squashed, as VPT does). It is not tested against a live MineRL here: MineRL
needs JDK 8 and a Gradle build that downloads Minecraft. Tests drive it with an object that follows MineRL's
documented API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from worldsim.envs.actions import MINERL_KEYS, ActionCodec, minerl_action_space

MINERL_ENV_IDS = (
    "MineRLBasaltFindCave-v0", "MineRLBasaltMakeWaterfall-v0", "MineRLBasaltCreateVillageAnimalPen-v0",
    "MineRLBasaltBuildVillageHouse-v0", "MineRLObtainDiamondShovel-v0", "MineRLHumanSurvival-v0",
    "MineRLTreechop-v0", "MineRLNavigate-v0",
)

INSTALL_HINT = (
    "the `minerl` package is not installed. MineRL 1.0 needs JDK 8 and builds Minecraft with Gradle at install "
    "time: install JDK 8 (e.g. `apt-get install openjdk-8-jdk`), then `pip install 'worldsim[minerl]'` "
    "(or `pip install git+https://github.com/minerllabs/minerl`). See https://minerl.readthedocs.io."
)


def _make_real_minerl(env_id: str):
    try:
        import gym as old_gym  # MineRL registers its envs with the old gym package
        import minerl  # noqa: F401
    except ImportError as e:
        raise ImportError(f"worldsim/MineRL-{env_id}: {INSTALL_HINT}") from e
    return old_gym.make(env_id)


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (size, size, 3), area-averaged (no aliasing when shrinking 360x640 to 64x64)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
    if frame.shape[:2] == (size, size):
        return frame.copy()
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BOX))


class MineRLEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, minerl_id: str, size: int = 64, render_mode: str | None = None,
                 make_backend: Callable[[str], Any] | None = None):
        self.minerl_id = minerl_id
        self.size = size
        self.render_mode = render_mode
        self._backend = (make_backend or _make_real_minerl)(minerl_id)
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = minerl_action_space(MINERL_KEYS)
        self.codec = ActionCodec(self.action_space)
        self._frame = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None and hasattr(self._backend, "seed"):
            self._backend.seed(int(seed))
        obs = self._backend.reset()
        self._frame = resize_frame(obs["pov"], self.size)
        return self._frame, {"minerl_obs_keys": sorted(obs.keys())}

    def step(self, action: dict):
        a = self.codec.validate(action)
        minerl_action = {k: (np.asarray(v, np.float32) if k == "camera" else int(v)) for k, v in a.items()}
        obs, reward, done, info = self._backend.step(minerl_action)
        self._frame = resize_frame(obs["pov"], self.size)
        truncated = bool(info.get("TimeLimit.truncated", False)) if isinstance(info, dict) else False
        terminated = bool(done) and not truncated
        return self._frame, float(reward), terminated, truncated, dict(info) if isinstance(info, dict) else {}

    def render(self):
        return None if self._frame is None else self._frame.copy()

    def close(self):
        if self._backend is not None and hasattr(self._backend, "close"):
            self._backend.close()
        self._backend = None
