"""A MultiDiscrete view of the MineRL-style Dict action space, for RL libraries.

PPO implementations take Discrete/MultiDiscrete/Box spaces, not a Dict mixing keys and a continuous camera. We
give the policy one binary choice per key it controls and a few camera bins per axis (as VPT does for its
policy), and translate back to the env's Dict. Keys it does not control stay released. Camera bins are kept
within the turn speeds of the recorded data, so the world model is never asked to render moves it has not seen.

`repeat` holds each choice for that many env steps (the frame skip of MineRL's agents). A log breaks after ~80
steps of attack held without a break; a policy that draws its keys afresh every step seldom holds one that long
(0.95 per step holds 80 steps 2 % of the time, 20 choices 36 %), and a held choice is also how people play.

`clicks` turns keys into clicks: a key the policy keeps choosing is sent pressed, released, pressed, ... as a
player clicking would. It matters for `attack`/`use`, which in the game fire on the press and then only every
5/4 ticks while held: a world model that sees 4 frames of context cannot know where a held key is in that
cycle, and clicking makes every press count in both worlds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Dict, MultiDiscrete


@dataclass(frozen=True)
class DiscreteActionSpec:
    keys: tuple[str, ...] = ("attack", "forward", "back", "left", "right", "jump", "use")
    camera_bins: tuple[float, ...] = (-6.0, -2.0, 0.0, 2.0, 6.0)  # degrees per step, the same bins for pitch and yaw
    clicks: tuple[str, ...] = ()  # keys sent as clicks (pressed at most every other step), see the module doc
    repeat: int = 1  # env steps each choice is held (the policy decides every `repeat` steps), see the module doc

    def __post_init__(self):
        if int(self.repeat) < 1:
            raise ValueError(f"repeat must be >= 1 env steps per choice, got {self.repeat}")

    @property
    def space(self) -> MultiDiscrete:
        return MultiDiscrete([2] * len(self.keys) + [len(self.camera_bins)] * 2)

    def check(self, action_space: Dict) -> None:
        missing = [k for k in (*self.keys, "camera", *self.clicks) if k not in action_space.spaces]
        if missing:
            raise ValueError(f"the env's action space has no {missing}: it is not a MineRL-style Dict")

    def to_dict(self, a: np.ndarray, action_space: Dict) -> dict[str, Any]:
        """(..., len(keys) + 2) ints -> the env's action Dict (batched when `a` has a batch axis)."""
        a = np.asarray(a, np.int64)
        lead = a.shape[:-1]
        out: dict[str, Any] = {}
        for key in action_space.spaces:
            if key == "camera":
                bins = np.asarray(self.camera_bins, np.float32)
                out[key] = np.stack([bins[a[..., len(self.keys)]], bins[a[..., len(self.keys) + 1]]], axis=-1)
            elif key in self.keys:
                v = a[..., self.keys.index(key)]
                out[key] = v if lead else int(v)
            else:
                out[key] = np.zeros(lead, np.int64) if lead else 0
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: v if isinstance(v, int) else list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DiscreteActionSpec:
        return cls(keys=tuple(d["keys"]), camera_bins=tuple(float(x) for x in d["camera_bins"]),
                   clicks=tuple(d.get("clicks", ())), repeat=int(d.get("repeat", 1)))


class ActionTranslator:
    """MultiDiscrete -> Dict for one env or a batch, remembering what was sent last step (for `clicks`)."""

    def __init__(self, spec: DiscreteActionSpec, action_space: Dict):
        self.spec, self.action_space = spec, action_space
        self.last: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        self.last = {}

    def __call__(self, a: np.ndarray) -> dict[str, Any]:
        out = self.spec.to_dict(a, self.action_space)
        for key in self.spec.clicks:
            v = np.asarray(out[key], np.int64)
            sent = v * (1 - self.last.get(key, np.zeros_like(v)))
            self.last[key] = sent
            out[key] = sent if sent.ndim else int(sent)
        return out


class DiscreteActions(gym.ActionWrapper):
    """A single env with a MineRL-style Dict action space, driven by MultiDiscrete actions."""

    def __init__(self, env: gym.Env, spec: DiscreteActionSpec | None = None):
        super().__init__(env)
        self.action_spec = spec or DiscreteActionSpec()  # (`spec` is the env's registration spec in Gymnasium)
        self.action_spec.check(env.action_space)
        self.action_space = self.action_spec.space
        self.translate = ActionTranslator(self.action_spec, env.action_space)

    def reset(self, **kwargs):
        self.translate.reset()
        return self.env.reset(**kwargs)

    def action(self, action: np.ndarray) -> dict[str, Any]:
        return self.translate(action)


def discrete_vector_actions(env: gym.vector.VectorEnv, spec: DiscreteActionSpec | None = None) -> gym.vector.VectorEnv:
    """The same translation for a vector env (Gymnasium's own TransformAction wrapper). With `clicks`, a sub-env
    that autoresets keeps its click phase across the reset: at most one step of difference."""
    from gymnasium.wrappers.vector import TransformAction

    spec = spec or DiscreteActionSpec()
    spec.check(env.single_action_space)
    single = spec.space
    return TransformAction(env, ActionTranslator(spec, env.single_action_space),
                           action_space=gym.vector.utils.batch_space(single, env.num_envs), single_action_space=single)
