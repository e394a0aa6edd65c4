"""`worldsim/MinecraftIndev-v0`: survival Minecraft Indev 0.31 as a Gymnasium env with MineRL's action space."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.envs.actions import ActionCodec, minerl_action_space
from worldsim.envs.indev.game import GAME_VERSION, LEVEL_SIZES, TICKS_PER_SECOND, Controls, LevelSpec
from worldsim.envs.indev.process import GameProcess
from worldsim.envs.indev.rewards import make_reward

#: The MineRL 1.0 keys Indev can perform; sneak, sprint, drop, swapHands, pickItem and ESC are not played here.
INDEV_KEYS = ("attack", "back", "camera", "forward", *(f"hotbar.{i}" for i in range(1, 10)), "inventory",
              "jump", "left", "right", "use")


#: Frame sizes the game renders natively; 32 is for tiny models and tests.
FRAME_SIZES = (32, 64, 128)


class MinecraftIndevEnv(gym.Env):
    """One 20 Hz game tick per step, one natively rendered RGB frame (HUD included) per tick.

    With a GUI open (inventory, workbench), as in MineRL, `camera` moves a cursor and attack/use click. Reward:
    the task's (`envs/indev/rewards.py`; without a task, +1 per block broken). Death terminates the episode.
    Each episode's level is generated from a seed drawn from the env's generator, in a fresh game process;
    the next episode's process starts in the background so `reset()` rarely waits for level generation.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": TICKS_PER_SECOND}

    def __init__(self, size: int = 64, level_size: int = 128, level_type: str = "inland", theme: str = "normal",
                 task: str | None = None, render_mode: str | None = None, timeout_s: float = 60.0,
                 prefetch: bool = True):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if size not in FRAME_SIZES:
            raise ValueError(f"size must be one of {FRAME_SIZES} (rendered natively), got {size}")
        if level_size not in LEVEL_SIZES:
            raise ValueError(f"level_size must be one of {LEVEL_SIZES}, got {level_size}")
        self.level = LevelSpec(level_size, level_type, theme)
        self.render_mode = render_mode
        self.size = size
        self.task = task
        self.timeout_s = timeout_s
        self.prefetch = prefetch
        self._reward = make_reward(task)
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = minerl_action_space(INDEV_KEYS)
        self.codec = ActionCodec(self.action_space)
        self._game: GameProcess | None = None
        self._next: tuple[int, GameProcess] | None = None
        self._wasted = False
        self._frame: np.ndarray | None = None
        self._info: dict[str, Any] = {}
        self._episode_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._close_game()
        self._episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        if self._next is not None and self._next[0] == self._episode_seed:
            self._game = self._next[1]
            self._next = None
            self._game.wait_ready()
        else:
            if self._next is not None:  # a new seed made the background level useless: stop making them...
                self._wasted = True
            self._drop_prefetch()
            self._game = self._start(self._episode_seed)
            self._game.wait_ready()
        if seed is None:  # ...until resets go on without seeds again
            self._wasted = False
        if self.prefetch and not self._wasted:
            # the seed the next reset() will draw, read from a copy of the generator so the env's stream is unchanged
            upcoming = int(copy.deepcopy(self.np_random).integers(0, 2**31 - 1))
            self._next = (upcoming, self._start(upcoming))
        self._reward.reset(self._game.info)
        self._frame = self._game.frame.copy()
        self._info = self._with_seed(self._game.info)
        return self._frame, self._info

    def _start(self, seed: int) -> GameProcess:
        return GameProcess(seed, self.size, self.level, timeout_s=self.timeout_s, wait=False)

    def step(self, action: dict[str, Any]):
        if self._game is None:
            raise RuntimeError("call reset() before step()")
        a = self.codec.validate(action)
        hotbar = next((i for i in range(9) if a[f"hotbar.{i + 1}"]), -1)
        info = self._game.step(Controls(
            forward=bool(a["forward"]), back=bool(a["back"]), left=bool(a["left"]), right=bool(a["right"]),
            jump=bool(a["jump"]), attack=bool(a["attack"]), use=bool(a["use"]), inventory=bool(a["inventory"]),
            hotbar=hotbar, camera=(float(a["camera"][0]), float(a["camera"][1]))))
        self._frame = self._game.frame.copy()
        reward = self._reward.step(info)
        self._info = self._with_seed(info)
        terminated = bool(info["dead"] or info["pos"][1] < -10.0)
        return self._frame, float(reward), terminated, False, self._info

    def _with_seed(self, info: dict) -> dict:
        out = dict(info)
        out["pos"] = np.asarray(info["pos"], np.float64)
        out["episode_seed"] = self._episode_seed
        return out

    def block_at(self, x: int, y: int, z: int) -> str:
        """The block at a world position, by the game's name for it (`air`, `wood`, `planks`, ...)."""
        return self._running().block_at(x, y, z)

    def teleport(self, x: float, y: float, z: float, pitch: float | None = None, yaw: float | None = None) -> dict:
        """Move the player (as MineRL's `/tp`): for tests, evaluations and task set-ups; returns the new info."""
        return self._command("teleport", x=x, y=y, z=z, pitch=pitch, yaw=yaw)

    def set_block(self, x: int, y: int, z: int, name: str) -> dict:
        """Put a block into the world (as `/setblock`)."""
        return self._command("set_block", x=x, y=y, z=z, name=name)

    def give(self, name: str, count: int = 1) -> dict:
        """Put items into the player's inventory (as `/give`)."""
        return self._command("give", name=name, count=count)

    def _command(self, op: str, **args) -> dict:
        info = self._running().command(op, **args)
        self._reward.reset(info)  # a command is not the agent's doing: it earns no reward
        self._frame = self._game.frame.copy()
        self._info = self._with_seed(info)
        return self._info

    def _running(self) -> GameProcess:
        if self._game is None:
            raise RuntimeError("call reset() first")
        return self._game

    def render(self):
        if self.render_mode == "rgb_array" and self._frame is not None:
            return self._frame.copy()
        return None

    @property
    def game_version(self) -> str:
        return GAME_VERSION

    @property
    def game_pid(self) -> int | None:
        """The process id of the running game (a test kills it to check the error the env gives)."""
        return None if self._game is None else self._game.pid

    def _close_game(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None

    def _drop_prefetch(self) -> None:
        if self._next is not None:
            self._next[1].close()
            self._next = None

    def close(self):
        self._close_game()
        self._drop_prefetch()
