"""Rollout datasets in Minari's format, written one episode at a time, atomically, by parallel workers.

Layout of a dataset folder `DS` (a Minari dataset: `minari.MinariDataset(DS / "data")` reads it, and with
`MINARI_DATASETS_PATH` pointing above `DS` so does `minari.load_dataset`):

    DS/data/metadata.json          Minari metadata + a "worldsim" block (env id, frame size, game version, source)
    DS/data/<i>/part-0.arrow       episode i: observations (T+1 frames, raw uint8, lossless), actions (the Dict),
    DS/data/<i>/metadata.json      rewards, terminations, truncations, infos; per-episode seed
    DS/videos/episode_<i>.mp4      optional previews

Semantics (Minari's): `observations[t]` is the frame at which `actions[t]` was taken; it led to
`observations[t+1]`, `rewards[t]`, `terminations[t]`, `truncations[t]`.

Why Minari with Arrow and `jpeg_encoding=False`: it is Farama's standard for Gymnasium datasets and stores Dict
action spaces natively; the Arrow IPC files can be memory-mapped, so training streams frames without loading a
dataset into memory, and frames stay bit-exact (JPEG would put compression artefacts into the model's targets).
Each episode is written into a private temporary folder and renamed into place, so a killed collection loses
only episodes in flight; `total_episodes` counts the contiguous prefix of finished episodes, so readers never
see a gap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa

FORMAT_VERSION = 1
DATA = "data"


class DatasetError(ValueError):
    """A dataset folder is missing, corrupt or does not match what is being written into it."""


POSE_PITCH = 3  # column of infos["pose"] ([x, y, z, pitch, yaw], as the collector writes it) holding the pitch


@dataclass
class Episode:
    """One episode: `frames` (T+1, H, W, 3) uint8, `actions` dict of (T, ...) arrays, per-step arrays of T."""

    index: int
    frames: np.ndarray
    actions: dict[str, np.ndarray]
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)

    def view_pitch(self) -> np.ndarray:
        """(T+1,) float32: the view's pitch in degrees at each frame, from the recorded poses; NaN without them."""
        pose = self.infos.get("pose")
        if pose is None:
            return np.full(len(self.frames), np.nan, np.float32)
        return np.asarray(pose[:, POSE_PITCH], np.float32)

    def validate(self) -> None:
        t = len(self.rewards)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise DatasetError(f"episode {self.index}: frames must be uint8 (T+1, H, W, 3), got {self.frames.dtype} {self.frames.shape}")
        if len(self.frames) != t + 1:
            raise DatasetError(f"episode {self.index}: {len(self.frames)} frames for {t} steps; need exactly steps + 1")
        for k, v in self.actions.items():
            if len(v) != t:
                raise DatasetError(f"episode {self.index}: action {k!r} has {len(v)} entries for {t} steps")
        for name in ("terminations", "truncations"):
            if len(getattr(self, name)) != t:
                raise DatasetError(f"episode {self.index}: {name} has {len(getattr(self, name))} entries for {t} steps")


def episode_dir(root: Path, index: int) -> Path:
    return Path(root) / DATA / str(index)


def read_metadata(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / DATA / "metadata.json"
    if not path.exists():
        raise DatasetError(f"{root} is not a worldsim/Minari dataset: {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is corrupt: {e}") from e


class Dataset:
    """Fast reader: episodes are memory-mapped Arrow files; frames come back as zero-copy numpy views."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.metadata = read_metadata(self.root)
        from minari.serialization import deserialize_space

        self.observation_space = deserialize_space(self.metadata["observation_space"])
        self.action_space = deserialize_space(self.metadata["action_space"])
        self.info = self.metadata.get("worldsim", {})
        self.num_episodes = int(self.metadata["total_episodes"])

    def __len__(self) -> int:
        return self.num_episodes

    @property
    def total_steps(self) -> int:
        return int(self.metadata["total_steps"])

    def episode_length(self, index: int) -> int:
        return int(json.loads((episode_dir(self.root, index) / "metadata.json").read_text())["total_steps"])

    def episode(self, index: int) -> Episode:
        if not 0 <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range: {self.root} has {self.num_episodes} episodes")
        d = episode_dir(self.root, index)
        files = sorted(d.glob("*.arrow"))
        if not files:
            raise DatasetError(f"episode {index}: no Arrow file in {d}")
        try:
            table = pa.concat_tables(pa.ipc.open_file(pa.memory_map(str(f))).read_all() for f in files)
        except (pa.ArrowInvalid, OSError) as e:
            raise DatasetError(f"episode {index}: {files[0]} is corrupt or truncated ({e})") from e
        meta = json.loads((d / "metadata.json").read_text())
        n = table.num_rows  # T + 1 rows; the last row's action/reward are padding
        obs = table.column("observations").combine_chunks()
        frames = obs.values.to_numpy(zero_copy_only=False).reshape(n, *self.observation_space.shape)
        acts = table.column("actions").combine_chunks()
        actions = {}
        for key, sub in self.action_space.spaces.items():
            col = acts.field(key)
            if isinstance(sub, gym.spaces.Box):
                v = col.values.to_numpy(zero_copy_only=False).reshape(n, *sub.shape)
            else:
                v = col.to_numpy(zero_copy_only=False)
            actions[key] = v[:-1]
        infos = {}
        if "infos" in table.column_names:
            from minari.dataset._storages.arrow_storage import _decode_info

            infos = {k: v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v
                     for k, v in _decode_info(table.column("infos").combine_chunks()).items()}
        return Episode(index=index, frames=frames, actions=actions,
                       rewards=table.column("rewards").to_numpy()[:-1].astype(np.float32),
                       terminations=table.column("terminations").to_numpy()[:-1].astype(bool),
                       truncations=table.column("truncations").to_numpy()[:-1].astype(bool),
                       seed=meta.get("seed"), infos=infos)

    def __iter__(self) -> Iterator[Episode]:
        for i in range(self.num_episodes):
            yield self.episode(i)

    def minari(self):
        """The same data through Minari's own reader."""
        import minari

        return minari.MinariDataset(self.root / DATA)
