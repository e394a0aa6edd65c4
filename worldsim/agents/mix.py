"""The collector's policy mix: what users do in a world model, in segments of a few seconds each.

A model only holds its world under the behaviours it was trained on. People who try a neural Minecraft stand
still, turn away and back, press random keys and play; a dataset of human-like exploration alone moves the
camera on 97 % of steps, so a still camera is almost never seen. This policy switches between:

- ``explore``: the human-like explorer (`worldsim.agents.explore.ExploreAgent`);
- ``idle``: every key released and the camera exactly still, for one to five seconds;
- ``random``: uniform random actions, as ``action_space.sample()`` draws them (camera anywhere in its Box);
- ``sweep``: turn away (90 or 180 degrees of yaw) or look down, hold a moment, and come back by the same
  amount, keys released: the return leg shows again what the start showed (a memory test the data teaches);
- ``walk``: stand still one to three seconds, then walk from the stand (forward mostly; back, a strafe or a
  diagonal; hops; the view still or turning slowly) for one to five seconds. Users stand and then walk; the
  explorer almost never does (1 in 1,200 steps of the first campaign data begins a walk from a stand), and a model
  that never saw a stand turn into a walk keeps the stand when told to walk (`docs/training_log.md`, fourteenth
  sitting).

An episode may begin at the spawn: before its first exploring segment, up to three idle, random or sweep segments
in the hut the game spawns the player in (none in 40 % of episodes; policy `mix-spawn`: four to eight; in policy
`mix-walk`, whose segments are half walks, walks too). A neural Minecraft's users start there and stand still, look
around and press keys first; a model that only ever saw the hut while walking out of it has no
idea what standing in it looks like, and dreams it into something else (`docs/training_log.md`).

`mode` names what the last action came from; the collector records it per step (`MODES` gives the ids), so
`worldsim stats` can report the mix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Box, Dict, Discrete

from worldsim.agents.explore import ExploreAgent

MODES = ("explore", "idle", "random", "sweep", "walk")
# per segment, so that of the steps about half explore, a fifth idle and the rest split between random keys and
# sweeps (segments differ in length: explore 250 steps on average, idle and random 60, a sweep about 25)
WEIGHTS = np.array([0.15, 0.25, 0.18, 0.42, 0.0])
# policy `mix-walk`: half of the segments a walk begun from a stand, the rest as the usual mix would choose
WALK_WEIGHTS = np.array([0.15, 0.1, 0.1, 0.15, 0.5])
DURATION = {"explore": (100, 400), "idle": (20, 100), "random": (20, 100)}
WALK_STAND = (20, 60)  # steps stood still before a walk (a player let go of the keys slides ~15 of them)
WALK_MOVE = (20, 100)  # steps walked
# the keys a walk holds, and how often: forward mostly, as players walk
WALK_KEYS = (("forward",), ("back",), ("left",), ("right",), ("forward", "left"), ("forward", "right"))
WALK_KEY_P = np.array([0.6, 0.1, 0.075, 0.075, 0.075, 0.075])
WALK_TURNING = 0.4  # the share of walks that turn the view slowly while walking
WALK_HOP = 0.1  # per walking step: jump, so that a walk climbs the one-block steps of the terrain
PITCH_LIMIT = 90.0  # the game clamps the view's pitch here
SPAWN_SEGMENTS = np.array([0.4, 0.3, 0.2, 0.1])  # P(0, 1, 2, 3 segments at the spawn before the first exploring one)
# policy `mix-spawn`: 4 to 8 segments at the spawn (~250 steps), then the usual mix; what a dataset adds when its
# dreams must hold the spawn, which users see first and the usual mix records in ~1 % of its frames
SPAWN_HEAVY = np.array([0.0] * 4 + [0.2] * 5)


class MixAgent:
    MODES = MODES  # the collector records `MODES.index(mode)` per step

    def __init__(self, action_space: Dict, seed: int | None = None, seek_trees: bool = False,
                 spawn_segments: np.ndarray = SPAWN_SEGMENTS, weights: np.ndarray = WEIGHTS):
        """seek_trees: the explorer goes to trees and chops them (policy `mix-trees`), so a dataset holds trees
        being chopped, which Treechop's reward heads learn from. spawn_segments[k]: the probability of k idle,
        random-key, sweep or walk segments at the spawn before the first exploring one. weights: the chance of each
        of MODES per segment after it (WEIGHTS: no walks; WALK_WEIGHTS: half walks)."""
        self.action_space = action_space
        self.spawn_segments = np.asarray(spawn_segments, np.float64)
        if len(weights) != len(MODES) or min(weights) < 0 or not np.isclose(sum(weights), 1.0):
            raise ValueError(f"weights must give each of {MODES} a share >= 0, summing to 1; got {list(weights)}")
        self.weights = np.asarray(weights, np.float64)
        self.explorer = ExploreAgent(action_space, seed=seed, seek_trees=seek_trees)
        self.rng = np.random.default_rng(seed)
        self.has_camera = isinstance(action_space.spaces.get("camera"), Box)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.explorer.reset(seed=None if seed is None else seed + 1)
        self.pitch = 0.0  # our own estimate of the view's pitch (the game starts level), clamped as the game does
        self.mode = "explore"
        self.left = 0
        self.plan: list[np.ndarray] = []  # a sweep's camera moves, one per step
        self.walk: list[tuple[tuple[str, ...], np.ndarray]] = []  # a walk's keys and camera moves, one per step
        self._closing = False
        self.at_spawn = int(self.rng.choice(len(self.spawn_segments), p=self.spawn_segments))  # segments left in the hut
        self.explored = False

    def _next_segment(self) -> None:
        r = self.rng
        w = self.weights
        if self.at_spawn > 0:  # in the hut still: idle, random keys, a sweep or a walk before exploring
            self.at_spawn -= 1
            mode = str(r.choice(MODES[1:], p=w[1:] / w[1:].sum()))
        elif not self.explored:  # then out of the hut
            mode, self.explored = "explore", True
        else:
            mode = str(r.choice(MODES, p=w))
        if mode == "sweep" and not self.has_camera:
            mode = "idle"
        self.mode = mode
        if mode == "sweep":
            self.plan = self._sweep_plan()
            self.left = len(self.plan)
        elif mode == "walk":
            self.walk = self._walk_plan()
            self.left = len(self.walk)
        else:
            lo, hi = DURATION[mode]
            self.left = int(r.integers(lo, hi + 1))
        if mode == "explore":
            self.explorer.pitch = self.pitch  # it steers its own pitch estimate back to a comfortable range

    def _sweep_plan(self) -> list[np.ndarray]:
        """Camera moves [pitch, yaw] for one away-and-back sweep: equal steps out, a pause, the same steps back."""
        r = self.rng
        speed = float(r.uniform(5.0, 15.0))
        if r.random() < 0.7:  # turn away and back
            total = float(r.choice([90.0, 180.0])) * float(r.choice([-1.0, 1.0]))
            n = max(1, int(round(abs(total) / speed)))
            out = [np.array([0.0, total / n], np.float32)] * n
        else:  # look down (or up, when already looking down) and back, within the game's clamp
            target = float(r.uniform(50.0, 80.0))
            total = target - self.pitch if self.pitch < 20 else -float(r.uniform(40.0, 70.0)) - self.pitch
            total = float(np.clip(self.pitch + total, -PITCH_LIMIT, PITCH_LIMIT) - self.pitch)
            n = max(1, int(round(abs(total) / speed)))
            out = [np.array([total / n, 0.0], np.float32)] * n
        hold = [np.zeros(2, np.float32)] * int(r.integers(0, 11))
        return out + hold + [-m for m in out]

    def _walk_plan(self) -> list[tuple[tuple[str, ...], np.ndarray]]:
        """(keys held, camera move [pitch, yaw]) per step: a stand, then a walk begun from it."""
        r = self.rng
        still = np.zeros(2, np.float32)
        plan = [((), still)] * int(r.integers(WALK_STAND[0], WALK_STAND[1] + 1))
        keys = WALK_KEYS[int(r.choice(len(WALK_KEYS), p=WALK_KEY_P))]
        turn = still
        if self.has_camera and r.random() < WALK_TURNING:
            turn = np.array([0.0, r.uniform(1.0, 5.0) * r.choice([-1.0, 1.0])], np.float32)
        for _ in range(int(r.integers(WALK_MOVE[0], WALK_MOVE[1] + 1))):
            plan.append((keys + (("jump",) if r.random() < WALK_HOP else ()), turn))
        return plan

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.left <= 0:
            self._next_segment()
        self.left -= 1
        gui_open = bool(info and info.get("gui") is not None)
        if self.mode == "explore":
            action = self.explorer.act(observation, info)
        elif gui_open and self.mode in ("idle", "sweep") and "inventory" in self.action_space.spaces:
            action = self._released()  # random keys left a GUI open: close it first (a key press, then release)
            action["inventory"] = np.int64(not self._closing)
            self._closing = not self._closing
            self.left += 1
        elif self.mode == "random":
            action = self._random()
        else:
            action = self._released()
            if self.mode == "sweep":
                action["camera"] = self.plan[len(self.plan) - 1 - self.left].copy()
            elif self.mode == "walk":
                keys, camera = self.walk[len(self.walk) - 1 - self.left]
                for key in keys:
                    if isinstance(self.action_space.spaces.get(key), Discrete):
                        action[key] = np.int64(1)
                if self.has_camera:
                    action["camera"] = camera.copy()
        if self.has_camera:
            self.pitch = float(np.clip(self.pitch + float(action["camera"][0]), -PITCH_LIMIT, PITCH_LIMIT))
        return action

    def _released(self) -> dict[str, Any]:
        """Every key released (its no-op value), the camera exactly still."""
        action: dict[str, Any] = {}
        for key, sub in self.action_space.spaces.items():
            if isinstance(sub, Discrete):
                action[key] = np.int64(sub.start)
            elif isinstance(sub, Box):
                action[key] = np.zeros(sub.shape, sub.dtype)
        return action

    def _random(self) -> dict[str, Any]:
        """What `action_space.sample()` draws (every Discrete uniform, every Box uniform over its bounds), from
        this policy's own seeded stream."""
        action: dict[str, Any] = {}
        for key, sub in self.action_space.spaces.items():
            if isinstance(sub, Discrete):
                action[key] = np.int64(sub.start + self.rng.integers(sub.n))
            elif isinstance(sub, Box):
                action[key] = self.rng.uniform(sub.low, sub.high).astype(sub.dtype)
        return action
