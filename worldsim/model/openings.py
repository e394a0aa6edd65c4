"""A bank of real opening clips carried inside a checkpoint, so a dream can start from real footage offline.

Each opening is K real frames plus the K-1 real actions between them, cut from episodes of the training data.
Stored as `openings.safetensors` next to the weights: frames (N, K, H, W, 3) uint8, actions (N, K-1, A) float32,
and pitch (N, K) float32: the view's pitch at each frame in degrees (NaN where the data does not report it; banks
written before it existed have no pitch entry).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from worldsim.data.dataset import Dataset
from worldsim.io.atomic import publish_mode
from worldsim.model.actions import ActionCodec

FILE = "openings.safetensors"


def cut_openings(ds: Dataset, codec: ActionCodec, k: int, n: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """n clips of k frames from distinct places of the dataset: 2n candidates (spread over episodes, random
    starts), of which the n spread evenly over the range of the last frame's brightness are kept, so a small bank
    still holds the data's range of views (under trees, in caves, at open sky) rather than its most common one."""
    rng = np.random.default_rng(seed)
    frames, actions, pitch = [], [], []
    episodes = rng.permutation(len(ds))
    for i in range(2 * n):
        ep = ds.episode(int(episodes[i % len(episodes)]))
        if len(ep.frames) < k:
            continue
        s = int(rng.integers(0, len(ep.frames) - k + 1))
        frames.append(np.array(ep.frames[s:s + k]))
        actions.append(codec.encode_batch({key: v[s:s + k - 1] for key, v in ep.actions.items()}))
        pitch.append(ep.view_pitch()[s:s + k])
    if not frames:
        raise ValueError(f"no episode of {ds.root} has {k} frames")
    order = np.argsort([f[-1].mean() for f in frames], kind="stable")
    keep = np.sort(order[np.unique(np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int))])
    return {"frames": np.stack(frames)[keep], "actions": np.stack(actions).astype(np.float32)[keep],
            "pitch": np.stack(pitch).astype(np.float32)[keep]}


def save_openings(checkpoint: str | os.PathLike, bank: dict[str, np.ndarray]) -> Path:
    path = Path(checkpoint) / FILE
    tmp = path.with_name(f".{FILE}.tmp")
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bank.items()}, str(tmp))
    publish_mode(tmp)
    os.replace(tmp, path)
    return path


def load_openings(checkpoint: str | os.PathLike) -> dict[str, np.ndarray] | None:
    path = Path(checkpoint) / FILE
    if not path.exists():
        return None
    return {k: v.numpy() for k, v in load_file(str(path)).items()}
