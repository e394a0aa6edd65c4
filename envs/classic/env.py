"""`worldsim/MinecraftClassic-v0`: Minecraft rd-161348 as a Gymnasium env with MineRL's action space."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.actions import ActionCodec, minerl_action_space
from envs.classic.game import GAME_VERSION, PLACEABLE_TILES, TICKS_PER_SECOND, ClassicGame, Controls

#: The MineRL keys rd-161348 can perform; sneak, sprint, inventory, drop... do not exist in this version.
CLASSIC_KEYS = ("attack", "back", "camera", "forward", "jump", "left", "right", "use",
                *(f"hotbar.{i}" for i in range(1, len(PLACEABLE_TILES) + 1)))


class MinecraftClassicEnv(gym.Env):
    """One 20 Hz game tick per step, one natively rendered RGB frame per tick.

    Reward: +1 for every block broken (the simplest signal that depends on both the action and what is in
    view); the episode terminates if the player falls out of the world. `info` reports the player's pose, so
    tests and evaluations can check what the frames show against the game state.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": TICKS_PER_SECOND}

    def __init__(self, size: int = 64, level_size: int = 256, zombies: int = 10, render_mode: str | None = None,
                 frustum_culling: bool = True):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = minerl_action_space(CLASSIC_KEYS)
        self.codec = ActionCodec(self.action_space)
        self._game = ClassicGame(size=size, level_size=level_size, zombies=zombies, frustum_culling=frustum_culling)
        self._frame: np.ndarray | None = None
        self._episode_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Each episode's world comes from the env's seeded generator, so reset(seed=s) then reset() is reproducible.
        self._episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._frame = self._game.reset(self._episode_seed)
        return self._frame, self._info()

    def step(self, action: dict[str, Any]):
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        a = self.codec.validate(action)
        hotbar = next((i for i in range(len(PLACEABLE_TILES)) if a[f"hotbar.{i + 1}"]), None)
        pitch, yaw = (float(x) for x in a["camera"])
        broken = self._game.blocks_broken
        self._frame = self._game.step(Controls(
            forward=bool(a["forward"]), back=bool(a["back"]), left=bool(a["left"]), right=bool(a["right"]),
            jump=bool(a["jump"]), attack=bool(a["attack"]), use=bool(a["use"]), hotbar=hotbar,
            pitch=pitch, yaw=yaw))
        reward = float(self._game.blocks_broken - broken)
        terminated = bool(self._game.player.y < -10.0)
        return self._frame, reward, terminated, False, self._info()

    def _info(self) -> dict[str, Any]:
        p = self._game.player
        return {
            "pos": np.array([p.x, p.y, p.z], np.float64),
            "pitch": float(p.xRot),
            "yaw": float(p.yRot),
            "on_ground": bool(p.onGround),
            "tick": self._game.tick_count,
            "selected_block": int(PLACEABLE_TILES[self._game.selected]),
            "blocks_broken": self._game.blocks_broken,
            "blocks_placed": self._game.blocks_placed,
            "episode_seed": self._episode_seed,
        }

    def render(self):
        if self.render_mode == "rgb_array":
            return None if self._frame is None else self._frame.copy()
        return None

    @property
    def game_version(self) -> str:
        return GAME_VERSION

    def close(self):
        if self._game is not None:
            self._game.close()
            self._game = None
