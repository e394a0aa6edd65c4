"""An exploration policy that plays the way people do, so a world model sees every action in context.

Uniform per-step noise (the `random` policy) makes a jittering camera that stands still; a world model trained
on it never sees a sustained walk, a smooth turn, a tree being chopped or the inventory being used. This policy
switches between *behaviours* that last from a fraction of a second to several seconds:

- walk (forward held, with strafes, back-steps and jumps over obstacles, swimming up when in water);
- look around (smooth yaw sweeps, pitch drifting between looking up and down, never past ±70°);
- chop (a log under the crosshair: hold attack until it breaks, then walk over what it dropped);
- with `seek_trees`, go to a tree (the game's `info["nearest_log"]`: turn to it, walk, break leaves in the
  way) and chop it: the collector's `mix-trees` policy plays so, so that datasets hold trees being chopped; the
  `explore` baseline does not;
- dig (look down-ish, hold attack) and place (pick a hotbar slot, hold use);
- inventory (open it, move the cursor between slots, pick up and put down items, craft a workbench from planks
  when it holds four, close it);
- stand still;

and each episode starts by walking straight out of the hut the game spawns the player in.

Camera motion is a smoothed random process (an Ornstein-Uhlenbeck velocity), so turns ramp up and down. The
policy tracks its own pitch by integrating its camera actions and steers it back toward a comfortable range. It
reads the game's `info` where the env gives it (what is under the crosshair, being in water, an open GUI, the
hotbar, the cursor) and plays blind where it does not (a dream, another backend).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Dict

BEHAVIOURS = ("walk", "look", "dig", "place", "inventory", "idle")
WEIGHTS = np.array([0.36, 0.2, 0.14, 0.12, 0.06, 0.12])
DURATION = {"walk": (15, 80), "look": (10, 40), "dig": (10, 40), "place": (8, 30), "inventory": (0, 0),
            "idle": (5, 30), "chop": (120, 120), "leave": (20, 20), "tree": (100, 200)}
TREE_SHARE = 0.35  # with seek_trees: share of behaviour changes that go to the nearest tree when one is known
PITCH_LIMIT = 70.0
WOOD = ("wood",)  # the log's name in the game's info
# The inventory screen in GUI pixels (the 176 × 166 screen centred in a 192 × 192 GUI; `envs/indev/game.py`)
GUI_CENTRE = (96.0, 96.0)
HOTBAR_SLOTS = [(24.0 + 18 * i, 163.0) for i in range(9)]
MAIN_SLOTS = [(24.0 + 18 * c, 105.0 + 18 * r) for r in range(3) for c in range(9)]
CRAFT_GRID = [(104.0, 47.0), (122.0, 47.0), (104.0, 65.0), (122.0, 65.0)]
CRAFT_RESULT = (160.0, 57.0)
CURSOR_SPEED = 24.0  # GUI pixels (degrees of camera) per step at most


class ExploreAgent:
    def __init__(self, action_space: Dict, seed: int | None = None, seek_trees: bool = False):
        self.action_space = action_space
        self.seek_trees = seek_trees
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
        self.behaviour = "leave"  # first out through the door ahead (the game spawns the player in a hut)
        self.left_in_behaviour = DURATION["leave"][0]
        self.target_pitch = 0.0
        self.strafe = None
        self.turn_bias = 0.0
        self.plan: list[tuple] = []  # the inventory behaviour's script: ("key", name) / ("to", x, y) / ("wait",)
        self.cursor = list(GUI_CENTRE)
        self.gui_open = False
        self.last_pressed: set[str] = set()

    # ----- choosing what to do -----
    def _next_behaviour(self, info: dict) -> None:
        r = self.rng
        self.behaviour = str(r.choice(BEHAVIOURS, p=WEIGHTS))
        if self.seek_trees and info.get("nearest_log") and r.random() < TREE_SHARE:
            self.behaviour = "tree"
        if self.behaviour == "inventory" and "inventory" not in self.keys:
            self.behaviour = "look"
        lo, hi = DURATION[self.behaviour]
        self.left_in_behaviour = int(r.integers(lo, hi + 1))
        self.turn_bias = float(r.normal(0.0, 2.5)) if r.random() < 0.6 else 0.0
        if self.behaviour == "dig":
            self.target_pitch = float(r.uniform(15, 65)) if r.random() < 0.7 else float(r.uniform(-10, 20))
        elif self.behaviour == "place":
            self.target_pitch = float(r.uniform(10, 60))
            self.slot = self._slot_to_place(info)
            self.slot_pressed = False
        elif self.behaviour == "look":
            self.target_pitch = float(r.uniform(-60, 60))
        elif self.behaviour == "inventory":
            self.plan = self._inventory_plan(info)
            self.left_in_behaviour = 10**9  # until the script is played
        else:
            self.target_pitch = float(r.uniform(-15, 25))
        self.strafe = str(r.choice(["left", "right"])) if r.random() < 0.25 else None

    def _slot_to_place(self, info: dict) -> str | None:
        if not self.hotbar:
            return None
        held = info.get("hotbar")
        if held:
            filled = [i for i, s in enumerate(held) if s and i < len(self.hotbar)]
            if filled:
                return self.hotbar[int(self.rng.choice(filled))]
        return self.hotbar[int(self.rng.integers(len(self.hotbar)))]

    def _inventory_plan(self, info: dict) -> list[tuple]:
        """Open, a few pick-ups and put-downs (a workbench crafted when four planks are at hand), close."""
        r = self.rng
        plan: list[tuple] = [("key", "inventory"), ("wait",)]
        held = info.get("hotbar") or []
        planks = [i for i, s in enumerate(held) if s and s[0] == "planks" and s[1] >= 4]
        if planks and r.random() < 0.7:
            slot = HOTBAR_SLOTS[planks[0]]
            plan += [("to", *slot), ("key", "attack"), ("wait",)]
            for cell in CRAFT_GRID:
                plan += [("to", *cell), ("key", "use"), ("wait",)]
            plan += [("to", *slot), ("key", "attack"), ("wait",), ("to", *CRAFT_RESULT), ("key", "attack"),
                     ("wait",)]
            empty = [i for i, s in enumerate(held) if not s and i != planks[0]]
            plan += [("to", *HOTBAR_SLOTS[empty[0] if empty else planks[0]]), ("key", "attack"), ("wait",)]
        else:
            slots = HOTBAR_SLOTS + MAIN_SLOTS
            for _ in range(int(r.integers(1, 4))):
                for _ in range(2):  # pick up, put down elsewhere
                    plan += [("to", *slots[int(r.integers(len(slots)))]), ("key", "attack"), ("wait",)]
        plan += [("wait",)] * int(r.integers(0, 10)) + [("key", "inventory"), ("wait",)]
        return plan

    # ----- acting -----
    def act(self, observation: np.ndarray, info: dict[str, Any] | None = None) -> dict[str, Any]:
        info = info or {}
        if "gui" in info:
            self.gui_open = info["gui"] is not None
        if "cursor" in info:
            self.cursor = list(info["cursor"])
        target = info.get("target")
        if self.behaviour != "chop" and target and target[3] in WOOD and (self.behaviour == "tree" or self.rng.random() < 0.5):
            self.behaviour, self.left_in_behaviour, self.chopping = "chop", DURATION["chop"][0], target[:3]
        closing = self.gui_open and self.behaviour != "inventory" and "inventory" in self.keys
        if not closing and self.behaviour != "inventory" and self.left_in_behaviour <= 0:
            self._next_behaviour(info)
        if closing:  # a GUI left open (by random keys): close it, a press then a release
            pressed, camera = ({"inventory"} if "inventory" not in self.last_pressed else set()), (0.0, 0.0)
        elif self.behaviour == "inventory":
            pressed, camera = self._play_plan()
        else:
            self.left_in_behaviour -= 1
            pressed, camera = self._play(info)
        self.last_pressed = pressed
        action: dict[str, Any] = {}
        for key in self.action_space.spaces:
            if key == "camera":
                action[key] = np.array(camera, np.float32)
            else:
                action[key] = np.int64(key in pressed)
        return action

    def _play_plan(self) -> tuple[set[str], tuple[float, float]]:
        if not self.plan:
            self.left_in_behaviour = 0
            self.behaviour = "idle"
            return set(), (0.0, 0.0)
        step = self.plan[0]
        if step[0] == "key":
            self.plan.pop(0)
            if step[1] == "inventory":
                self.gui_open = not self.gui_open
                self.cursor = list(GUI_CENTRE)
            return {step[1]}, (0.0, 0.0)
        if step[0] == "wait":
            self.plan.pop(0)
            return set(), (0.0, 0.0)
        dx, dy = step[1] - self.cursor[0], step[2] - self.cursor[1]
        dist = float(np.hypot(dx, dy))
        if dist <= CURSOR_SPEED:
            self.plan.pop(0)
            move = (dy, dx)
        else:
            jitter = self.rng.uniform(0.6, 1.0)
            move = (dy / dist * CURSOR_SPEED * jitter, dx / dist * CURSOR_SPEED * jitter)
        self.cursor = [self.cursor[0] + move[1], self.cursor[1] + move[0]]
        return set(), (float(move[0]), float(move[1]))

    def _toward_log(self, info: dict) -> tuple[float, float]:
        """Camera (pitch, yaw) moves of at most 10 degrees that turn the view to the centre of the nearest log,
        from the pose the game reports (the view faces (sin yaw, -cos yaw) in x, z; pitch > 0 looks down)."""
        log, pos = info.get("nearest_log"), info.get("pos")
        if not log or pos is None or "yaw" not in info:
            return 0.0, 0.0
        d = np.array(log, np.float64) + 0.5 - np.asarray(pos, np.float64)
        want_yaw = float(np.degrees(np.arctan2(d[0], -d[2])))
        want_pitch = float(np.degrees(np.arctan2(-d[1], max(np.hypot(d[0], d[2]), 1e-6))))
        dyaw = (want_yaw - float(info["yaw"]) + 180.0) % 360.0 - 180.0
        dpitch = float(np.clip(want_pitch, -PITCH_LIMIT, PITCH_LIMIT)) - float(info.get("pitch", self.pitch))
        self.pitch = float(info.get("pitch", self.pitch))  # the game's pose keeps our estimate honest
        return float(np.clip(dpitch, -10.0, 10.0)), float(np.clip(dyaw, -10.0, 10.0))

    def _play(self, info: dict) -> tuple[set[str], tuple[float, float]]:
        r = self.rng
        b = self.behaviour
        pressed: set[str] = set()
        # camera: OU velocity around a per-behaviour turning bias, pitch pulled toward its target
        turniness = {"walk": 1.2, "look": 3.0, "dig": 0.6, "place": 0.6, "idle": 0.3, "chop": 0.0, "leave": 0.0,
                     "tree": 0.0}[b]
        self.yaw_vel += 0.25 * (self.turn_bias * turniness - self.yaw_vel) + r.normal(0.0, 0.6 * turniness)
        self.pitch_vel += 0.2 * (0.15 * (self.target_pitch - self.pitch) - self.pitch_vel) + r.normal(0.0, 0.3)
        yaw = float(np.clip(self.yaw_vel, -15.0, 15.0))
        pitch = float(np.clip(self.pitch_vel, -10.0, 10.0))
        if b in ("chop", "leave"):
            yaw, pitch = 0.0, 0.0
        if b == "tree":
            pitch, yaw = self._toward_log(info)
        pitch = float(np.clip(self.pitch + pitch, -PITCH_LIMIT, PITCH_LIMIT) - self.pitch)
        self.pitch += pitch

        if b == "leave":
            pressed.add("forward")
        elif b == "walk":
            pressed.add("forward" if r.random() > 0.03 else "back")
            if self.strafe and r.random() < 0.7:
                pressed.add(self.strafe)
            if r.random() < 0.08:
                pressed.add("jump")
        elif b == "look":
            if r.random() < 0.1:
                pressed.add("jump")
        elif b == "tree":
            log, target = info.get("nearest_log"), info.get("target")
            if not log:
                self.left_in_behaviour = 0
            elif target and target[3] == "leaves":
                pressed.add("attack")  # leaves in the way break in a moment by hand
            elif abs(yaw) < 8.0:
                pressed.add("forward")
                if r.random() < 0.1:
                    pressed.add("jump")
        elif b == "chop":
            target = info.get("target")
            if target and list(target[:3]) == list(self.chopping):
                pressed.add("attack")
            else:  # the log broke (or the view moved off it): walk over the drop, then back to walking
                pressed.add("forward")
                self.left_in_behaviour = min(self.left_in_behaviour, 12)
        elif b == "dig":
            if r.random() < 0.9:
                pressed.add("attack")
            if r.random() < 0.05:
                pressed.add("forward")
        elif b == "place":
            if self.slot and not self.slot_pressed:
                pressed.add(self.slot)
                self.slot_pressed = True
            elif r.random() < 0.85:
                pressed.add("use")
            if r.random() < 0.05:
                pressed.add("back")
        # idle: nothing pressed, camera nearly still
        if info.get("in_water") and b != "idle" and r.random() < 0.8:
            pressed.add("jump")  # swim up
        if self.hotbar and r.random() < 0.03:  # players flick through the hotbar now and then
            pressed.add(self.hotbar[int(r.integers(len(self.hotbar)))])
        return pressed, (pitch, yaw)
