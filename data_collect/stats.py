"""Action statistics of a dataset: how often each key is held and how the camera moves."""

from __future__ import annotations

import numpy as np

from data_collect.dataset import Dataset


def action_stats(ds: Dataset) -> dict:
    counts: dict[str, float] = {}
    cam = []
    steps = 0
    for i in range(len(ds)):
        ep = ds.episode(i)
        steps += len(ep)
        for k, v in ep.actions.items():
            if k == "camera":
                cam.append(np.asarray(v, np.float64))
            else:
                counts[k] = counts.get(k, 0) + int(np.sum(v))
    out: dict = {"steps": steps, "episodes": len(ds),
                 "pressed_fraction": {k: round(c / max(steps, 1), 4) for k, c in sorted(counts.items())}}
    if cam:
        c = np.concatenate(cam)
        moving = np.abs(c) > 0.05
        out["camera"] = {
            "pitch_abs_mean_deg": round(float(np.abs(c[:, 0]).mean()), 3),
            "yaw_abs_mean_deg": round(float(np.abs(c[:, 1]).mean()), 3),
            "pitch_moving_fraction": round(float(moving[:, 0].mean()), 4),
            "yaw_moving_fraction": round(float(moving[:, 1].mean()), 4),
            "pitch_p99_abs_deg": round(float(np.percentile(np.abs(c[:, 0]), 99)), 3),
            "yaw_p99_abs_deg": round(float(np.percentile(np.abs(c[:, 1]), 99)), 3),
        }
    return out


def format_stats(stats: dict) -> str:
    lines = [f"{stats['episodes']} episodes, {stats['steps']} steps"]
    for k, f in stats["pressed_fraction"].items():
        lines.append(f"  {k:<10} held {100 * f:5.1f}% of steps")
    if "camera" in stats:
        c = stats["camera"]
        lines.append(f"  camera     pitch moves {100 * c['pitch_moving_fraction']:.0f}% of steps (mean |Δ| {c['pitch_abs_mean_deg']}°), "
                     f"yaw moves {100 * c['yaw_moving_fraction']:.0f}% (mean |Δ| {c['yaw_abs_mean_deg']}°)")
    return "\n".join(lines)
