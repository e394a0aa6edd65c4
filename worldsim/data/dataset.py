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
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa
import torch

from worldsim.io.atomic import publish_mode, write_json_atomic

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

    def view_turns(self) -> np.ndarray | None:
        """(T, 2) float64: how far the view itself turned at each step, [pitch, yaw] degrees (yaw wrapped to
        [-180, 180)), from the recorded poses; None without them. Unlike the camera action, it is 0 where a GUI
        was open (the camera moves a cursor) or the pitch stopped at its clamp."""
        pose = self.infos.get("pose")
        if pose is None:
            return None
        turn = np.diff(np.asarray(pose, np.float64)[:, POSE_PITCH:POSE_PITCH + 2], axis=0)
        turn[:, 1] = (turn[:, 1] + 180.0) % 360.0 - 180.0
        return turn

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


class DatasetWriter:
    """Creates (or reopens, to resume) a dataset and writes whole episodes atomically."""

    def __init__(self, root: str | os.PathLike, observation_space: gym.spaces.Box, action_space: gym.spaces.Dict,
                 info: dict[str, Any]):
        from minari.dataset.minari_storage import MinariStorage

        self.root = Path(root).resolve()  # Minari's size accounting breaks on relative paths
        self.observation_space = observation_space
        self.action_space = action_space
        data = self.root / DATA
        meta_path = data / "metadata.json"
        info = {"format_version": FORMAT_VERSION, **info,
                "frame_size": list(observation_space.shape[:2])}
        if meta_path.exists():
            meta = read_metadata(self.root)
            old = meta.get("worldsim", {})
            mismatched = {k: (old.get(k), v) for k, v in info.items() if k in ("env_id", "frame_size", "source")
                          and old.get(k) != v}
            if mismatched:
                raise DatasetError(f"{self.root} already holds a dataset that differs in {mismatched} "
                                   "(existing, requested): choose another --out folder")
            stored = MinariStorage.read(data)
            if stored.action_space != action_space or stored.observation_space != observation_space:
                raise DatasetError(f"{self.root}: existing dataset has different observation/action spaces")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            MinariStorage.new(data, observation_space=observation_space, action_space=action_space,
                              data_format="arrow", jpeg_encoding=False)
            meta = json.loads(meta_path.read_text())
            meta.update({"dataset_id": f"worldsim/{self.root.name}-v0", "minari_version": _minari_version(),
                         "worldsim": info})
            write_json_atomic(meta_path, meta)
        (self.root / ".tmp").mkdir(exist_ok=True)

    def has_episode(self, index: int) -> bool:
        return (episode_dir(self.root, index) / "metadata.json").exists()

    def write_episode(self, ep: Episode) -> None:
        """Write one episode; it appears under DS/data/<i> all at once or not at all."""
        from minari.data_collector.episode_buffer import EpisodeBuffer
        from minari.dataset.minari_storage import MinariStorage

        ep.validate()
        if tuple(ep.frames.shape[1:]) != tuple(self.observation_space.shape):
            raise DatasetError(f"episode {ep.index}: frames {ep.frames.shape[1:]} do not match the dataset's {self.observation_space.shape}")
        tmp = Path(tempfile.mkdtemp(prefix=f"ep{ep.index}-", dir=self.root / ".tmp"))
        publish_mode(tmp)
        try:
            storage = MinariStorage.new(tmp / DATA, observation_space=self.observation_space,
                                        action_space=self.action_space, data_format="arrow", jpeg_encoding=False)
            # Minari's Arrow reader cannot decode per-step scalars (shape ()), so they are stored as (n, 1)
            infos = {k: np.asarray(v).reshape(len(v), -1) for k, v in ep.infos.items()} or None
            buf = EpisodeBuffer(id=ep.index, seed=ep.seed, observations=ep.frames,
                                actions={k: np.asarray(v) for k, v in ep.actions.items()},
                                rewards=list(map(float, ep.rewards)), terminations=list(map(bool, ep.terminations)),
                                truncations=list(map(bool, ep.truncations)), infos=infos)
            storage.update_episodes([buf])
            src = tmp / DATA / str(ep.index)
            for f in src.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            dst = episode_dir(self.root, ep.index)
            if dst.exists():
                raise DatasetError(f"episode {ep.index} already exists in {self.root}")
            os.rename(src, dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def finalize(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Recount finished episodes (the contiguous prefix 0..n-1) and update the metadata atomically."""
        return refresh_metadata(self.root, extra)


def refresh_metadata(root: str | os.PathLike, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    root = Path(root)
    meta = read_metadata(root)
    n, steps = 0, 0
    while (episode_dir(root, n) / "metadata.json").exists():
        steps += json.loads((episode_dir(root, n) / "metadata.json").read_text())["total_steps"]
        n += 1
    meta["total_episodes"], meta["total_steps"] = n, steps
    meta["dataset_size"] = round(sum(f.stat().st_size for f in (root / DATA).rglob("*.arrow")) / 1e6, 3)
    if extra:
        meta["worldsim"].update(extra)
    write_json_atomic(root / DATA / "metadata.json", meta)
    return meta


def _minari_version() -> str:
    import minari

    return str(getattr(minari, "__version__", "unknown"))


class FrameSource:
    """Random frames from a dataset, episodes opened lazily and kept memory-mapped."""

    def __init__(self, ds: Dataset, episodes: list[int] | None = None):
        self.ds = ds
        self.episodes = episodes if episodes is not None else list(range(len(ds)))
        if not self.episodes:
            raise ValueError(f"dataset {ds.root} has no episodes to train on")
        self.lengths = np.array([ds.episode_length(i) + 1 for i in self.episodes])
        self.weights = self.lengths / self.lengths.sum()  # each frame equally likely
        self._open: dict[int, np.ndarray] = {}

    def frames(self, e: int) -> np.ndarray:
        if e not in self._open:
            self._open[e] = self.ds.episode(e).frames
        return self._open[e]

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        eps = rng.choice(len(self.episodes), size=n, p=self.weights)
        out = [self.frames(self.episodes[i])[rng.integers(self.lengths[i])] for i in eps]
        return torch.from_numpy(np.stack(out))
