"""How far the picture moves between two frames, and how much of a camera turn a dream turns into motion.

PSNR cannot tell "the dream turned, but blurrily" from "the dream did not turn": both lose dB. So the evaluation
also measures the *motion*: the image shift between consecutive frames (phase correlation with sub-pixel peak
refinement), compared with the camera action of each step. In the real game a yaw turn to the right moves the
scene left by a fixed number of pixels per degree; a dream that follows the turn moves it by as much. The ratio
dream / real of that slope is the share of a turn the dream shows (1.0: all of it; 0: the camera is ignored).

The spectrum is whitened (phase only) but weighted toward low frequencies: a blurry dream has almost no energy
at high frequencies, and whitening them would turn their random phase into noise that hides the peak.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _gray(frames: np.ndarray) -> np.ndarray:
    g = np.asarray(frames, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return g - g.mean(axis=(-2, -1), keepdims=True)


def frame_shift(a: np.ndarray, b: np.ndarray, max_shift: float | None = None) -> np.ndarray:
    """(N, 2) shifts (dy, dx) in pixels that move frames `a` onto frames `b` (both (N, H, W, 3) uint8 or float):
    dx > 0 means the content of b sits to the right of where it was in a. NaN where no clear peak exists
    (flat frames, or a peak beyond `max_shift`, default a quarter of the frame)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"frame_shift needs two (N, H, W, 3) arrays of one shape, got {a.shape} and {b.shape}")
    n, h, w = a.shape[:3]
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    fa, fb = np.fft.fft2(_gray(a) * window), np.fft.fft2(_gray(b) * window)
    cross = fb * np.conj(fa)
    ky, kx = np.fft.fftfreq(h) * h, np.fft.fftfreq(w) * w
    lowpass = np.exp(-(ky[:, None] ** 2 + kx[None, :] ** 2) / (2 * (min(h, w) / 8) ** 2))
    corr = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-6) * lowpass))
    flat = corr.reshape(n, -1).argmax(1)
    py, px = np.unravel_index(flat, (h, w))
    out = np.full((n, 2), np.nan)
    limit = max_shift if max_shift is not None else min(h, w) / 4
    for i in range(n):
        c = corr[i]
        if not np.isfinite(c).all() or c.std() < 1e-8:
            continue
        dy = py[i] + _parabolic(c[(py[i] - 1) % h, px[i]], c[py[i], px[i]], c[(py[i] + 1) % h, px[i]])
        dx = px[i] + _parabolic(c[py[i], (px[i] - 1) % w], c[py[i], px[i]], c[py[i], (px[i] + 1) % w])
        dy = (dy + h / 2) % h - h / 2  # wrap to [-H/2, H/2)
        dx = (dx + w / 2) % w - w / 2
        if abs(dy) <= limit and abs(dx) <= limit:
            out[i] = dy, dx
    return out


def _parabolic(left: float, mid: float, right: float) -> float:
    """Sub-pixel offset of a peak from its two neighbours (vertex of the parabola through three points)."""
    denom = left - 2 * mid + right
    return 0.0 if abs(denom) < 1e-12 else float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


#: The largest turn a step's shift is measured at: at the game's ~0.7 px per degree, 10 degrees move a 64-pixel frame
#: by 7 pixels, well inside the quarter-frame the peak search allows; random play turns up to 180 degrees a step,
#: whose "shift" is a new view, and a median over those reads near zero for any model (and for the real game).
MAX_TURN = 10.0


def camera_slopes(shifts: np.ndarray, camera: np.ndarray, min_turn: float = 1.5, max_turn: float = MAX_TURN,
                  valid: np.ndarray | None = None) -> dict[str, float | None]:
    """Pixels per degree: the median of dx / yaw over the steps that turn between `min_turn` and `max_turn` degrees
    sideways, and of dy / pitch over those that turn as much up or down (camera (N, 2) = [pitch, yaw] degrees, as
    in the action space); None where fewer than 3 steps turn that much. valid (N,) bool: the steps to use (those
    where the view turned as the action said: not with a GUI open, not against the pitch clamp). A median, not a
    least-squares fit: steps where the view is sky or points straight down have no texture to track and read as
    "no shift", which would drag a fit toward zero."""
    out: dict[str, float | None] = {}
    for axis, col in (("yaw", 1), ("pitch", 0)):
        turn = camera[:, col]
        ok = np.isfinite(shifts).all(1) & (np.abs(turn) >= min_turn) & (np.abs(turn) <= max_turn)
        if valid is not None:
            ok &= valid
        out[f"{axis}_px_per_deg"] = round(float(np.median(shifts[ok, col] / turn[ok])), 4) if ok.sum() >= 3 else None
        out[f"{axis}_pairs"] = int(ok.sum())
    return out


def camera_response(shifts: dict[str, np.ndarray], camera: np.ndarray,
                    valid: np.ndarray | None = None) -> dict[str, Any]:
    """Pixels per degree for each named set of frame shifts ("real", "dream", ...; all taken under the same
    actions, camera (N, 2); valid (N,): the steps whose view turned as the action said), and each set's ratio to
    "real" per axis (None where either slope is missing)."""
    out: dict[str, Any] = {name: camera_slopes(s, camera, valid=valid) for name, s in shifts.items()}
    real = out["real"]
    for name in list(shifts):
        if name != "real":
            out[f"{name}_over_real"] = {axis: _ratio(out[name][f"{axis}_px_per_deg"], real[f"{axis}_px_per_deg"])
                                        for axis in ("yaw", "pitch")}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or abs(b) < 1e-6 else round(a / b, 4)


def measure_camera(ds, episodes: list[int], pairs: int = 3000, seed: int = 0) -> tuple[float, float]:
    """The game's (down, right) pixel shift per degree of (pitch, yaw), read off random consecutive frame pairs of
    a dataset (`worldsim.data.dataset.Dataset`) with a 'camera' action: what the motion prior of the world model
    needs. (0.0, 0.0) for an axis the data never turns far enough to measure.

    Where the episodes record the pose (the real game's do), the turn is the view's own change of pitch and yaw,
    not the camera action: with a GUI open the camera moves a cursor, and pitch stops at ±90°. Only turns of at
    most 10° count, whose shifts stay well inside the frame (random play turns up to 180° a step)."""
    rng = np.random.default_rng(seed)
    lengths = np.array([ds.episode_length(e) for e in episodes], dtype=np.float64)
    per_episode = rng.multinomial(pairs, lengths / lengths.sum())
    shifts, cams, actions = [], [], []
    for e, n in zip(episodes, per_episode):
        if n == 0:
            continue
        ep = ds.episode(e)
        t = np.sort(rng.choice(len(ep), size=min(int(n), len(ep)), replace=False))
        shifts.append(frame_shift(ep.frames[t], ep.frames[t + 1]))
        action = np.asarray(ep.actions["camera"], np.float64)[t]
        turns = ep.view_turns()
        cams.append(action if turns is None else turns[t])
        actions.append(action)
    shifts = np.concatenate(shifts)
    slopes = camera_slopes(shifts, np.concatenate(cams))
    by_action = camera_slopes(shifts, np.concatenate(actions), max_turn=180.0)  # too few small view turns recorded
    return (slopes["pitch_px_per_deg"] or by_action["pitch_px_per_deg"] or 0.0,
            slopes["yaw_px_per_deg"] or by_action["yaw_px_per_deg"] or 0.0)
