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


def cut_openings(ds: Dataset, codec: ActionCodec, k: int, n: int = 32, seed: int = 0, still: bool = True
                 ) -> dict[str, np.ndarray]:
    """n clips of k frames from distinct places of the dataset: 4n candidates (spread over episodes, random
    starts), of which the n spread evenly over the range of the last frame's brightness are kept, so a small bank
    still holds the data's range of views (under trees, in caves, at open sky) rather than its most common one.
    still: each clip a settled stand (no key, no turn, the k frames one picture) where an episode holds one:
    a dream reset and left alone then stands where its user looks, instead of carrying on a spin, a slide or a
    fall the user never made (cut from random starts, most openings were mid-play)."""
    rng = np.random.default_rng(seed)
    frames, actions, pitch = [], [], []
    episodes = [int(e) for e in rng.permutation(len(ds))]
    if still:  # the episodes that hold a stand, with their stands' starts; none: any starts, as without `still`
        stands = {e: _stands(ds.episode(e), codec, k) for e in episodes[:4 * n]}
        episodes = [e for e in episodes[:4 * n] if len(stands[e])] or episodes
    for i in range(4 * n):
        e = episodes[i % len(episodes)]
        ep = ds.episode(e)
        if len(ep.frames) < k:
            continue
        starts = stands.get(e, ()) if still else ()
        s = int(rng.choice(starts)) if len(starts) else int(rng.integers(0, len(ep.frames) - k + 1))
        frames.append(np.array(ep.frames[s:s + k]))
        actions.append(codec.encode_batch({key: v[s:s + k - 1] for key, v in ep.actions.items()}))
        pitch.append(ep.view_pitch()[s:s + k])
    if not frames:
        raise ValueError(f"no episode of {ds.root} has {k} frames")
    keep = _spread([float(f[-1].mean()) for f in frames], n)
    return {"frames": np.stack(frames)[keep], "actions": np.stack(actions).astype(np.float32)[keep],
            "pitch": np.stack(pitch).astype(np.float32)[keep]}


def _spread(brightness: list[float], n: int) -> np.ndarray:
    """Indices of n candidates spread evenly over the range of their brightness values (not their ranks: stands
    gather in the spawn hut, and a rank spread would keep mostly its dark walls)."""
    b = np.asarray(brightness)
    free = np.ones(len(b), bool)
    keep = []
    for target in np.linspace(b.min(), b.max(), min(n, len(b))):
        i = int(np.argmin(np.where(free, np.abs(b - target), np.inf)))
        free[i] = False
        keep.append(i)
    return np.sort(np.array(keep))


def _gui_open(frames: np.ndarray) -> np.ndarray:
    """Per frame (T, H, W, 3): a GUI open (inventory, workbench), its flat panel grey covering over a quarter of
    the frame; a player standing in a menu is not an opening to stand in."""
    panel = np.array([140, 138, 140], frames.dtype)  # the GUI's panel grey, as the game draws it at 64x64
    return (frames == panel).all(-1).mean(axis=(1, 2)) > 0.25


def _stands(ep, codec: ActionCodec, k: int) -> np.ndarray:
    """Starts s of an episode whose k frames are a settled stand: the k-1 actions between them no-ops and no pixel
    changed but by a trace (mean under half a level: clouds drift), after a step that was one too (the player not
    sliding into it)."""
    flat = codec.encode_batch(ep.actions)
    idle = (flat == codec.encode(codec.noop())).all(-1)  # idle[t]: the action from frame t to t+1
    frames = np.asarray(ep.frames).astype(np.int16)
    same = np.abs(frames[1:] - frames[:-1]).mean(axis=(1, 2, 3)) < 0.5  # same[t]: frame t+1 is frame t
    ok = idle[:len(same)] & same & ~_gui_open(frames[1:])
    run = np.convolve(ok.astype(np.int64), np.ones(k, np.int64), "valid") == k  # t .. t+k-1 all still
    return np.flatnonzero(run) + 1  # frames s-1 .. s+k-1 the same picture, so s .. s+k-1 a stand


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
