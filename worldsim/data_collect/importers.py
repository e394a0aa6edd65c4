"""Importers of real Minecraft data people already have, into worldsim's dataset format.

- OpenAI VPT contractor data: `NAME.mp4` + `NAME.jsonl`, one JSON object per video frame (20 Hz).
- MineRL 0.4 dataset episodes: a folder with `recording.mp4` + `rendered.npz` (+ `metadata.json`).

Both produce episodes in the MineRL 1.0 action space. Alignment is the dataset's: `actions[t]` is what was
held while frame t was shown and led to frame t+1. For VPT, line t of the jsonl is the input recorded at video
frame t, so a video of N frames yields N-1 actions (the last line has no following frame and is dropped). Camera
degrees stay float (public converters truncate them to int). Anything malformed (missing partner file, broken
video, bad JSON line, frame/line count mismatch) is skipped with a reason in the report, never shifted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.data.dataset import DatasetWriter, Episode
from worldsim.envs.actions import MINERL_KEYS, minerl_action_space
from worldsim.envs.minerl_adapter import resize_frame
from worldsim.io.atomic import write_json_atomic
from worldsim.io.video import read_mp4

#: VPT: 2400 mouse pixels turn the camera 360 degrees (Minecraft's default sensitivity).
VPT_DEGREES_PER_PIXEL = 360.0 / 2400.0
VPT_KEYS = {
    "key.keyboard.w": "forward", "key.keyboard.s": "back", "key.keyboard.a": "left", "key.keyboard.d": "right",
    "key.keyboard.space": "jump", "key.keyboard.left.shift": "sneak", "key.keyboard.left.control": "sprint",
    "key.keyboard.q": "drop", "key.keyboard.e": "inventory", "key.keyboard.f": "swapHands",
    "key.keyboard.escape": "ESC", **{f"key.keyboard.{i}": f"hotbar.{i}" for i in range(1, 10)},
}
VPT_BUTTONS = {0: "attack", 1: "use", 2: "pickItem"}


class MalformedEpisodeError(ValueError):
    """One input episode is malformed; the message says which file and why."""


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": self.skipped}


def vpt_actions(lines: list[dict[str, Any]], source: str) -> dict[str, np.ndarray]:
    """VPT jsonl records -> MineRL 1.0 action arrays (one entry per record), camera as float degrees."""
    n = len(lines)
    out = {k: np.zeros(n, np.int64) for k in MINERL_KEYS if k != "camera"}
    camera = np.zeros((n, 2), np.float32)
    for t, rec in enumerate(lines):
        try:
            keys = rec["keyboard"]["keys"]
            mouse = rec["mouse"]
            buttons = mouse.get("buttons", [])
            dx, dy = float(mouse["dx"]), float(mouse["dy"])
        except (KeyError, TypeError, ValueError) as e:
            raise MalformedEpisodeError(f"{source}: line {t + 1} lacks keyboard.keys / mouse.dx / mouse.dy ({e!r})") from e
        for k in keys:
            if k in VPT_KEYS:
                out[VPT_KEYS[k]][t] = 1
        for b in buttons:
            if b in VPT_BUTTONS:
                out[VPT_BUTTONS[b]][t] = 1
        if not rec.get("isGuiOpen", False):  # with a GUI open the mouse moves a cursor, not the camera
            camera[t] = (dy * VPT_DEGREES_PER_PIXEL, dx * VPT_DEGREES_PER_PIXEL)
    out["camera"] = camera
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise MalformedEpisodeError(f"{path}: line {i} is not valid JSON ({e.msg})") from e
    return lines


def load_vpt_episode(mp4: Path, size: int, index: int) -> Episode:
    jsonl = mp4.with_suffix(".jsonl")
    if not jsonl.exists():
        raise MalformedEpisodeError(f"{mp4.name}: no matching {jsonl.name}")
    records = _read_jsonl(jsonl)
    try:
        video = read_mp4(mp4)
    except (ValueError, OSError) as e:
        raise MalformedEpisodeError(f"{mp4}: {e}") from e
    if len(video) != len(records):
        raise MalformedEpisodeError(f"{mp4.name}: {len(video)} video frames but {len(records)} jsonl lines; "
                           "refusing to guess the alignment")
    if len(video) < 2:
        raise MalformedEpisodeError(f"{mp4.name}: fewer than 2 frames")
    actions = {k: v[:-1] for k, v in vpt_actions(records, jsonl.name).items()}
    frames = np.stack([resize_frame(f, size) for f in video])
    t = len(frames) - 1
    truncated = np.zeros(t, bool)
    truncated[-1] = True  # a VPT segment ends where the recording was cut, not where the game ended
    return Episode(index=index, frames=frames, actions=actions, rewards=np.zeros(t, np.float32),
                   terminations=np.zeros(t, bool), truncations=truncated)


MINERL04_MAP = {"forward": "forward", "back": "back", "left": "left", "right": "right", "jump": "jump",
                "sneak": "sneak", "sprint": "sprint", "attack": "attack"}


def load_minerl_episode(folder: Path, size: int, index: int) -> Episode:
    mp4, npz = folder / "recording.mp4", folder / "rendered.npz"
    for p in (mp4, npz):
        if not p.exists():
            raise MalformedEpisodeError(f"{folder.name}: missing {p.name}")
    try:
        data = dict(np.load(npz, allow_pickle=False))
    except Exception as e:
        raise MalformedEpisodeError(f"{npz}: cannot read ({e})") from e
    if "reward" not in data:
        raise MalformedEpisodeError(f"{npz}: no 'reward' array")
    t = len(data["reward"])
    try:
        video = read_mp4(mp4)
    except (ValueError, OSError) as e:
        raise MalformedEpisodeError(f"{mp4}: {e}") from e
    if len(video) != t + 1:
        raise MalformedEpisodeError(f"{folder.name}: {len(video)} video frames for {t} steps (need steps + 1); "
                           "refusing to guess the alignment")
    actions = {k: np.zeros(t, np.int64) for k in MINERL_KEYS if k != "camera"}
    for src, dst in MINERL04_MAP.items():
        if f"action${src}" in data:
            actions[dst] = np.asarray(data[f"action${src}"]).astype(np.int64).reshape(t)
    if "action$place" in data:  # 0.4 'place' is an item name or 'none'; 1.0 calls the button 'use'
        place = np.asarray(data["action$place"])
        actions["use"] = (place.astype(str) != "none").astype(np.int64) if place.dtype.kind in "US" else (place != 0).astype(np.int64)
    cam = np.asarray(data.get("action$camera", np.zeros((t, 2))), np.float32).reshape(t, 2)
    actions["camera"] = np.clip(cam, -180.0, 180.0)
    frames = np.stack([resize_frame(f, size) for f in video])
    done = np.zeros(t, bool)
    done[-1] = True
    return Episode(index=index, frames=frames, actions=actions, rewards=np.asarray(data["reward"], np.float32),
                   terminations=done, truncations=np.zeros(t, bool))


def import_vpt(src: str | Path, out: str | Path, size: int = 64) -> ImportReport:
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"VPT folder not found: {src}")
    candidates = sorted(src.glob("*.mp4")) + [j.with_suffix(".mp4") for j in sorted(src.glob("*.jsonl"))
                                                if not j.with_suffix(".mp4").exists()]
    return _import(candidates, out, size, "vpt", load_vpt_episode, lambda p: p.stem)


def import_minerl(src: str | Path, out: str | Path, size: int = 64) -> ImportReport:
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"MineRL dataset folder not found: {src}")
    folders = sorted(d for d in src.iterdir() if d.is_dir() and ((d / "recording.mp4").exists() or (d / "rendered.npz").exists()))
    return _import(folders, out, size, "minerl-0.4", load_minerl_episode, lambda p: p.name)


def _import(items: list[Path], out, size: int, source: str, load, name_of) -> ImportReport:
    import gymnasium as gym

    report = ImportReport()
    writer = DatasetWriter(out, gym.spaces.Box(0, 255, (size, size, 3), np.uint8), minerl_action_space(),
                           {"env_id": source, "source": source, "game_version": "Minecraft (Java)"})
    names_path = Path(out) / "data" / "episode_sources.json"
    names: list[str] = json.loads(names_path.read_text()) if names_path.exists() else []
    index = len(names)
    for item in items:
        name = name_of(item)
        if name in names:
            report.imported.append(name)  # already imported by an earlier run
            continue
        try:
            ep = load(item, size, index)
        except MalformedEpisodeError as e:
            report.skipped[name] = str(e)
            continue
        writer.write_episode(ep)
        names.append(name)
        write_json_atomic(names_path, names)
        report.imported.append(name)
        index += 1
    writer.finalize({"episode_sources": "episode_sources.json"})
    return report
