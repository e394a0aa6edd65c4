"""mp4 writing (imageio-ffmpeg), atomic like every other artefact."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from worldsim.io.atomic import temp_sibling


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray] | np.ndarray, fps: int = 20, scale: int = 1) -> Path:
    """Write RGB uint8 frames to an H.264 mp4 (nearest-neighbour upscaled by `scale`; sizes padded to 16)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, ".mp4")
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16,
                                ffmpeg_log_level="error") as w:
            for f in frames:
                f = np.asarray(f, np.uint8)
                if scale != 1:
                    f = f.repeat(scale, 0).repeat(scale, 1)
                w.append_data(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_mp4(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video as (T, H, W, 3) uint8; a missing or unreadable file raises naming the path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    try:
        with imageio.get_reader(path, format="FFMPEG") as r:
            frames = [np.asarray(f)[..., :3] for f in r]
    except Exception as e:  # imageio raises several types for broken files
        raise ValueError(f"cannot decode video {path}: {e}") from e
    if not frames:
        raise ValueError(f"video {path} has no frames (truncated or empty)")
    return np.stack(frames)
