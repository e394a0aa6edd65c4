"""An exploration policy that moves the way players do, so a world model sees every action in context.

Uniform per-step noise (the `random` policy) makes a jittering camera that stands still; a world model trained
on it never sees a sustained walk, a smooth turn or a block being dug. This policy instead switches between
*behaviours* that last from a fraction of a second to several seconds:

- walk (forward held, with strafes, occasional back-steps and jumps over obstacles), often while turning;
- look around (smooth yaw sweeps, pitch drifting between looking up and down, never past ±70°);
- dig (look down-ish, hold attack) and build (pick a hotbar block, hold use);
- stand still.

Camera motion is a smoothed random process (an Ornstein-Uhlenbeck velocity), so turns ramp up and down. The
policy tracks its own pitch by integrating the camera actions (it never reads the game state) and steers it
back toward a comfortable range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Dict

BEHAVIOURS = ("walk", "look", "dig", "build", "idle")
WEIGHTS = np.array([0.34, 0.2, 0.2, 0.16, 0.10])
DURATION = {"walk": (15, 80), "look": (10, 40), "dig": (10, 40), "build": (8, 30), "idle": (5, 30)}
PITCH_LIMIT = 70.0


class ExploreAgent:
    def __init__(self, action_space: Dict, seed: int | None = None):
        self.action_space = action_space
        self.keys = set(action_space.spaces)
        self.hotbar = sorted(k for k in self.keys if k.startswith("hotbar."))
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pitch = 0.0  # our own estimate of where we look; the game starts level
        self.yaw_vel = 0.0
        self.pitch_vel = 0.0
        self.behaviour = "idle"
        self.left_in_behaviour = 0
        self.target_pitch = 0.0
        self.strafe = None

    def _next_behaviour(self) -> None:
        r = self.rng
        self.behaviour = str(r.choice(BEHAVIOURS, p=WEIGHTS))
        lo, hi = DURATION[self.behaviour]
        self.left_in_behaviour = int(r.integers(lo, hi + 1))
        self.turn_bias = float(r.normal(0.0, 2.5)) if r.random() < 0.6 else 0.0
        if self.behaviour == "dig":
            self.target_pitch = float(r.uniform(15, 65)) if r.random() < 0.7 else float(r.uniform(-10, 20))
        elif self.behaviour == "build":
            self.target_pitch = float(r.uniform(10, 60))
            self.slot = self.hotbar[int(r.integers(len(self.hotbar)))] if self.hotbar else None
            self.slot_pressed = False
        elif self.behaviour == "look":
            self.target_pitch = float(r.uniform(-60, 60))
        else:
            self.target_pitch = float(r.uniform(-15, 25))
        self.strafe = str(r.choice(["left", "right"])) if r.random() < 0.25 else None

    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.rng
        if self.left_in_behaviour <= 0:
            self._next_behaviour()
        self.left_in_behaviour -= 1
        b = self.behaviour
        pressed: set[str] = set()

        # camera: OU velocity around a per-behaviour turning bias, pitch pulled toward its target
        turniness = {"walk": 1.2, "look": 3.0, "dig": 0.6, "build": 0.6, "idle": 0.3}[b]
        self.yaw_vel += 0.25 * (self.turn_bias * turniness - self.yaw_vel) + r.normal(0.0, 0.6 * turniness)
        self.pitch_vel += 0.2 * (0.15 * (self.target_pitch - self.pitch) - self.pitch_vel) + r.normal(0.0, 0.3)
        yaw = float(np.clip(self.yaw_vel, -15.0, 15.0))
        pitch = float(np.clip(self.pitch_vel, -10.0, 10.0))
        pitch = float(np.clip(self.pitch + pitch, -PITCH_LIMIT, PITCH_LIMIT) - self.pitch)
        self.pitch += pitch

        if b == "walk":
            pressed.add("forward" if r.random() > 0.03 else "back")
            if self.strafe and r.random() < 0.7:
                pressed.add(self.strafe)
            if r.random() < 0.08:
                pressed.add("jump")
        elif b == "look":
            if r.random() < 0.1:
                pressed.add("jump")
        elif b == "dig":
            if r.random() < 0.9:
                pressed.add("attack")
            if r.random() < 0.05:
                pressed.add("forward")
        elif b == "build":
            if self.slot and not self.slot_pressed:
                pressed.add(self.slot)
                self.slot_pressed = True
            elif r.random() < 0.85:
                pressed.add("use")
            if r.random() < 0.05:
                pressed.add("back")
        # idle: nothing pressed, camera nearly still
        if self.hotbar and r.random() < 0.01:  # players flick through the hotbar now and then
            pressed.add(self.hotbar[int(r.integers(len(self.hotbar)))])

        action: dict[str, Any] = {}
        for key in self.action_space.spaces:
            if key == "camera":
                action[key] = np.array([pitch, yaw], np.float32)
            else:
                action[key] = np.int64(key in pressed)
        return action
