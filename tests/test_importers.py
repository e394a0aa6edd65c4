"""VPT and MineRL 0.4 importers on synthetic files written here (real mp4s via imageio, real jsonl/npz)."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from worldsim.data.dataset import Dataset
from worldsim.data_collect.importers import import_minerl, import_vpt

W, H = 128, 72  # a small 16:9 video, like VPT's 640x360


def _frame(bar_x: int, tint: int = 0) -> np.ndarray:
    f = np.full((H, W, 3), 40, np.uint8)
    f[:, bar_x: bar_x + 16] = 230  # a bright bar whose position encodes the history of actions
    f[: H // 4, :, 2] = tint
    return f


def _bar_x(frame: np.ndarray) -> int:
    """Bar position in an imported 64x64 frame, in source pixels."""
    col = frame[16:, :, 0].astype(float).mean(0)
    return int(round((np.argmax(col > 135)) * W / 64))


def _write_mp4(path, frames):
    with imageio.get_writer(path, fps=20, codec="libx264", quality=10, macro_block_size=8) as w:
        for f in frames:
            w.append_data(f)


def _vpt_episode(folder, name, n=12, seed=0):
    """Frame t+1's bar is 16 px right of frame t's exactly when line t holds W: the action at frame t leads to t+1."""
    rng = np.random.default_rng(seed)
    fwd = rng.integers(0, 2, n)
    fwd[:3] = [1, 0, 1]
    xs = [8]
    for t in range(n - 1):
        xs.append(xs[-1] + 16 * int(fwd[t]) if xs[-1] + 32 < W else 8)
        if xs[-1] == 8 and t > 0:
            fwd[t] = 0  # wrapped around: treat as a no-op step so the encoding stays checkable
            xs[-1] = xs[-2]
    lines = []
    for t in range(n):
        keys = ["key.keyboard.w"] if fwd[t] else []
        if t % 4 == 1:
            keys.append("key.keyboard.space")
        lines.append({"mouse": {"x": 0, "y": 0, "dx": 3.0 if t % 2 else -1.0, "dy": 1.0, "buttons": [0] if t % 3 == 0 else [],
                                "newButtons": [], "dwheel": 0},
                      "keyboard": {"keys": keys, "newKeys": [], "chars": ""}, "isGuiOpen": t == n - 2, "hotbar": 0,
                      "yaw": 0.0, "pitch": 0.0, "tick": t})
    _write_mp4(folder / f"{name}.mp4", [_frame(x) for x in xs])
    (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return fwd, xs


def test_vpt_import_keeps_float_camera_and_aligns_actions_with_frames(tmp_path):
    src = tmp_path / "vpt"
    src.mkdir()
    fwd, xs = _vpt_episode(src, "cheeky-cornflower-setter-abc", n=12)
    report = import_vpt(src, tmp_path / "ds", size=64)
    assert report.imported == ["cheeky-cornflower-setter-abc"] and not report.skipped
    ep = Dataset(tmp_path / "ds").episode(0)
    assert len(ep.frames) == 12 and len(ep) == 11  # N frames -> N-1 actions
    # camera: [dy, dx] * 360/2400 degrees, kept fractional (3 px = 0.45 deg; an int cast would make it 0)
    assert ep.actions["camera"][1].tolist() == pytest.approx([0.15, 0.45])
    assert ep.actions["camera"][0].tolist() == pytest.approx([0.15, -0.15])
    assert ep.actions["camera"][10].tolist() == [0.0, 0.0]  # GUI open: the mouse moved a cursor, not the camera
    assert ep.actions["attack"][:4].tolist() == [1, 0, 0, 1]
    assert ep.actions["jump"][1] == 1 and ep.actions["jump"][0] == 0
    # alignment: action t moved the bar between frame t and frame t+1
    for t in range(len(ep)):
        moved = _bar_x(ep.frames[t + 1]) - _bar_x(ep.frames[t])
        assert (moved > 8) == bool(ep.actions["forward"][t]), f"step {t}: moved {moved}, forward {ep.actions['forward'][t]}"
    assert ep.actions["forward"].tolist() == fwd[:-1].tolist()


def test_vpt_malformed_inputs_are_skipped_with_reasons(tmp_path):
    src = tmp_path / "vpt"
    src.mkdir()
    _vpt_episode(src, "good")
    _vpt_episode(src, "nojsonl")
    (src / "nojsonl.jsonl").unlink()
    _vpt_episode(src, "badline")
    lines = (src / "badline.jsonl").read_text().splitlines()
    lines[4] = "{not json"
    (src / "badline.jsonl").write_text("\n".join(lines))
    _vpt_episode(src, "mismatch")
    (src / "mismatch.jsonl").write_text("\n".join((src / "mismatch.jsonl").read_text().splitlines()[:-1]))
    _vpt_episode(src, "truncated")
    data = (src / "truncated.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) // 3])
    _vpt_episode(src, "onlyjsonl")
    (src / "onlyjsonl.mp4").unlink()
    report = import_vpt(src, tmp_path / "ds")
    assert report.imported == ["good"]
    assert "no matching" in report.skipped["nojsonl"]
    assert "line 5" in report.skipped["badline"]
    assert "12 video frames but 11 jsonl lines" in report.skipped["mismatch"]
    assert "truncated.mp4" in report.skipped["truncated"]
    assert "onlyjsonl" in report.skipped
    assert len(Dataset(tmp_path / "ds")) == 1
    # rerunning imports nothing twice
    again = import_vpt(src, tmp_path / "ds")
    assert again.imported == ["good"] and len(Dataset(tmp_path / "ds")) == 1


def _minerl_episode(folder, t=8, frames=None):
    folder.mkdir(parents=True)
    xs = [8 + 16 * (i % 5) for i in range(t + 1)]
    _write_mp4(folder / "recording.mp4", [_frame(x) for x in xs][: frames or t + 1])
    np.savez(folder / "rendered.npz", reward=np.arange(t, dtype=np.float32),
             **{"action$forward": np.ones(t, np.int64), "action$jump": np.arange(t) % 2,
                "action$camera": np.stack([np.linspace(-1.5, 1.5, t), np.full(t, 0.3)], 1).astype(np.float32),
                "action$place": np.array(["none", "dirt"] * (t // 2)), "action$sneak": np.zeros(t, np.int64)})
    (folder / "metadata.json").write_text(json.dumps({"success": True}))


def test_minerl_04_import(tmp_path):
    src = tmp_path / "MineRLTreechop-v0"
    _minerl_episode(src / "v3_a")
    _minerl_episode(src / "v3_b", frames=8)  # one frame short: refused, not shifted
    report = import_minerl(src, tmp_path / "ds")
    assert report.imported == ["v3_a"]
    assert "8 video frames for 8 steps" in report.skipped["v3_b"]
    ep = Dataset(tmp_path / "ds").episode(0)
    assert len(ep) == 8 and ep.frames.shape == (9, 64, 64, 3)
    assert ep.rewards.tolist() == list(range(8))
    assert ep.actions["use"].tolist() == [0, 1] * 4
    assert ep.actions["camera"][0].tolist() == pytest.approx([-1.5, 0.3])
    assert ep.terminations[-1]
