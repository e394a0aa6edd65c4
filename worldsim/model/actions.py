"""Generic handling of Dict action spaces (Discrete and Box entries), shared by the model, envs and agents.

A world model must be told actions as a vector, and RL libraries want one too. `ActionCodec` fixes a documented
flat layout for any Dict of `Discrete`/`Box` spaces: entries in the Dict's key order; a `Discrete(2)` is one value
(0 or 1), a `Discrete(n>2)` is n one-hot values, a `Box` is its values flattened, kept as float (never binned).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Dict, Discrete

if TYPE_CHECKING:
    import torch

MOVEMENT_KEYS = ("forward", "back", "left", "right", "jump", "sneak", "sprint")
"""The keys that move the player (MineRL's names): what walk-blind releases (`worldsim.evaluation.evaluate`) and
still-start training walks with (`TrainConfig.still_start`), those of them an action space has."""


class InvalidActionError(ValueError):
    """An action does not fit the action space; the message names the offending key."""


class ActionCodec:
    """Converts between action dicts and flat float32 vectors, and validates actions."""

    def __init__(self, space: Dict):
        if not isinstance(space, Dict):
            raise TypeError(f"expected a gymnasium Dict action space, got {type(space).__name__}")
        self.space = space
        self.slices: dict[str, slice] = {}
        names: list[str] = []
        offset = 0
        for key, sub in space.spaces.items():
            if isinstance(sub, Discrete):
                width = 1 if sub.n == 2 else int(sub.n)
                names += [key] if width == 1 else [f"{key}={sub.start + i}" for i in range(width)]
            elif isinstance(sub, Box):
                width = int(np.prod(sub.shape))
                names += [f"{key}[{i}]" for i in range(width)] if width > 1 else [key]
            else:
                raise TypeError(f"action key {key!r}: only Discrete and Box spaces are supported, got {sub}")
            self.slices[key] = slice(offset, offset + width)
            offset += width
        self.dim = offset
        #: one name per entry of the flat vector, e.g. ['attack', 'back', 'camera[0]', 'camera[1]', ...]
        self.names = names
        self.box = np.zeros(offset, bool)  # the entries of Box keys (the camera): continuous numbers
        for key, sub in space.spaces.items():
            if isinstance(sub, Box):
                self.box[self.slices[key]] = True
        self._box_on: dict = {}  # the box mask as a tensor, per device (`features`)

    def features(self, flat: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Flat actions (..., A) -> what the networks read (..., A + 1), computed once per step and shared by the
        dynamics network and the outcome heads. Box entries (the camera) pass through a signed log,
        sign(x) log(1 + |x|), so a 0.15 degree turn and a 30 degree turn both stay distinct numbers, never binned;
        a last entry says whether the action is known at all (an episode's first frame has none leading into it)."""
        import torch  # here: the game's own process (NumPy 1) reads actions and never imports torch

        flat = flat.float()
        box = self._box_on.get(flat.device)
        if box is None:  # once per device, not per step
            box = self._box_on[flat.device] = torch.from_numpy(self.box).to(flat.device)
        flat = torch.where(box, torch.sign(flat) * torch.log1p(flat.abs()), flat)
        if known is None:
            known = torch.ones(flat.shape[:-1], device=flat.device)
        return torch.cat([flat * known[..., None], known[..., None].float()], dim=-1)

    # ----- validation -----
    def validate(self, action: Any) -> dict:
        """Return `action` as a clean dict of numpy values, or raise InvalidActionError naming what is wrong."""
        if not isinstance(action, Mapping):
            raise InvalidActionError(f"an action must be a dict with keys {list(self.space.keys())}, got {type(action).__name__}")
        missing = [k for k in self.space.keys() if k not in action]
        unknown = [k for k in action if k not in self.space.spaces]
        if unknown:
            raise InvalidActionError(f"unknown action key(s) {unknown}; this space has {list(self.space.keys())}")
        if missing:
            raise InvalidActionError(f"action is missing key(s) {missing}")
        clean = {}
        for key, sub in self.space.spaces.items():
            value = np.asarray(action[key])
            if isinstance(sub, Discrete):
                if value.shape != () or not (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.bool_)
                                              or (np.issubdtype(value.dtype, np.floating) and float(value) == int(value))):
                    raise InvalidActionError(f"action[{key!r}] must be an integer scalar in [{sub.start}, {sub.start + sub.n}), got {action[key]!r}")
                v = int(value)
                if not sub.start <= v < sub.start + sub.n:
                    raise InvalidActionError(f"action[{key!r}]={v} is out of range [{sub.start}, {sub.start + sub.n})")
                clean[key] = np.int64(v)
            else:
                if value.shape != sub.shape:
                    raise InvalidActionError(f"action[{key!r}] must have shape {sub.shape}, got shape {value.shape}")
                if not np.issubdtype(value.dtype, np.number):
                    raise InvalidActionError(f"action[{key!r}] must be numeric, got dtype {value.dtype}")
                value = value.astype(sub.dtype)
                if not np.all(np.isfinite(value)):
                    raise InvalidActionError(f"action[{key!r}] must be finite, got {value.tolist()}")
                if np.any(value < sub.low) or np.any(value > sub.high):
                    raise InvalidActionError(f"action[{key!r}]={value.tolist()} is outside [{sub.low.min()}, {sub.high.max()}]")
                clean[key] = value
        return clean

    def noop(self) -> dict:
        """The action that does nothing: every key released, camera still."""
        return {k: (np.int64(sub.start) if isinstance(sub, Discrete) else np.zeros(sub.shape, sub.dtype))
                for k, sub in self.space.spaces.items()}

    # ----- flat vectors -----
    def encode(self, action: Mapping, validate: bool = False) -> np.ndarray:
        """One action dict -> float32 vector of length `dim` (validated first with `validate`: bad input raises
        InvalidActionError naming the key)."""
        if validate:
            action = self.validate(action)
        return self.encode_batch({k: np.asarray(v)[None] for k, v in action.items()})[0]

    def encode_batch(self, actions: Mapping[str, np.ndarray]) -> np.ndarray:
        """Dict of per-key arrays with a leading batch/time axis -> float32 array (N, dim)."""
        n = len(np.asarray(next(iter(actions.values()))))
        out = np.zeros((n, self.dim), np.float32)
        for key, sub in self.space.spaces.items():
            if key not in actions:
                raise InvalidActionError(f"actions are missing key {key!r}")
            v = np.asarray(actions[key])
            sl = self.slices[key]
            if isinstance(sub, Discrete):
                v = v.reshape(n).astype(np.int64) - sub.start
                if sub.n == 2:
                    out[:, sl] = v[:, None]
                else:
                    out[np.arange(n), sl.start + v] = 1.0
            else:
                out[:, sl] = v.reshape(n, -1)
        return out

    def decode(self, vector: np.ndarray) -> dict:
        """float vector (dim,) -> action dict (Discrete(2) thresholded at 0.5, one-hots by argmax, Box clipped)."""
        batch = self.decode_batch(np.asarray(vector, np.float32)[None])
        return {k: v[0] for k, v in batch.items()}

    def decode_batch(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidActionError(f"expected flat actions of shape (N, {self.dim}), got {vectors.shape}")
        out = {}
        for key, sub in self.space.spaces.items():
            v = vectors[:, self.slices[key]]
            if isinstance(sub, Discrete):
                idx = (v[:, 0] > 0.5).astype(np.int64) if sub.n == 2 else v.argmax(1).astype(np.int64)
                out[key] = idx + sub.start
            else:
                out[key] = np.clip(v.reshape(len(v), *sub.shape), sub.low, sub.high).astype(sub.dtype)
        return out

    # ----- (de)serialisation, so checkpoints and datasets record the space -----
    def to_json(self) -> str:
        return space_to_json(self.space)

    @classmethod
    def from_json(cls, text: str) -> ActionCodec:
        return cls(space_from_json(text))


def space_to_json(space: Dict) -> str:
    """A small, stable JSON description of a Dict of Discrete/Box spaces (key order kept)."""
    entries = []
    for key, sub in space.spaces.items():
        if isinstance(sub, Discrete):
            entries.append({"key": key, "type": "Discrete", "n": int(sub.n), "start": int(sub.start)})
        elif isinstance(sub, Box):
            entries.append({"key": key, "type": "Box", "shape": list(sub.shape), "dtype": str(sub.dtype),
                            "low": sub.low.tolist(), "high": sub.high.tolist()})
        else:
            raise TypeError(f"action key {key!r}: cannot serialise {sub}")
    return json.dumps(entries)


def space_from_json(text: str) -> Dict:
    entries = json.loads(text)
    spaces: dict[str, gym.Space] = {}
    for e in entries:
        if e["type"] == "Discrete":
            spaces[e["key"]] = Discrete(e["n"], start=e.get("start", 0))
        elif e["type"] == "Box":
            spaces[e["key"]] = Box(np.asarray(e["low"], e["dtype"]), np.asarray(e["high"], e["dtype"]),
                                   shape=tuple(e["shape"]), dtype=e["dtype"])
        else:
            raise ValueError(f"unknown space type {e['type']!r} for action key {e.get('key')!r}")
    return Dict(spaces)
