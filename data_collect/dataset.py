"""Writing rollout datasets (the format and the reader live in `worldsim.dataset`).

Each episode is written into a private temporary folder and renamed into place, so a killed collection loses
only the episodes in flight; `total_episodes` counts the contiguous prefix of finished episodes, so readers never
see a gap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from worldsim.atomic import publish_mode, write_json_atomic
from worldsim.dataset import DATA as _DATA
from worldsim.dataset import FORMAT_VERSION, Dataset, DatasetError, Episode, read_metadata
from worldsim.dataset import episode_dir as _episode_dir

__all__ = ["Dataset", "DatasetError", "DatasetWriter", "Episode", "read_metadata", "refresh_metadata"]


class DatasetWriter:
    """Creates (or reopens, to resume) a dataset and writes whole episodes atomically."""

    def __init__(self, root: str | os.PathLike, observation_space: gym.spaces.Box, action_space: gym.spaces.Dict,
                 info: dict[str, Any]):
        from minari.dataset.minari_storage import MinariStorage

        self.root = Path(root).resolve()  # Minari's size accounting breaks on relative paths
        self.observation_space = observation_space
        self.action_space = action_space
        data = self.root / _DATA
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
        return (_episode_dir(self.root, index) / "metadata.json").exists()

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
            storage = MinariStorage.new(tmp / _DATA, observation_space=self.observation_space,
                                        action_space=self.action_space, data_format="arrow", jpeg_encoding=False)
            # Minari's Arrow reader cannot decode per-step scalars (shape ()), so they are stored as (n, 1)
            infos = {k: np.asarray(v).reshape(len(v), -1) for k, v in ep.infos.items()} or None
            buf = EpisodeBuffer(id=ep.index, seed=ep.seed, observations=ep.frames,
                                actions={k: np.asarray(v) for k, v in ep.actions.items()},
                                rewards=list(map(float, ep.rewards)), terminations=list(map(bool, ep.terminations)),
                                truncations=list(map(bool, ep.truncations)), infos=infos)
            storage.update_episodes([buf])
            src = tmp / _DATA / str(ep.index)
            for f in src.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            dst = _episode_dir(self.root, ep.index)
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
    while (_episode_dir(root, n) / "metadata.json").exists():
        steps += json.loads((_episode_dir(root, n) / "metadata.json").read_text())["total_steps"]
        n += 1
    meta["total_episodes"], meta["total_steps"] = n, steps
    meta["dataset_size"] = round(sum(f.stat().st_size for f in (root / _DATA).rglob("*.arrow")) / 1e6, 3)
    if extra:
        meta["worldsim"].update(extra)
    write_json_atomic(root / _DATA / "metadata.json", meta)
    return meta


def _minari_version() -> str:
    import minari

    return str(getattr(minari, "__version__", "unknown"))
