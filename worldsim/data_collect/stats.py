"""Action statistics of a dataset: how often each key is held and how the camera moves."""

from __future__ import annotations

import numpy as np

from worldsim.data.dataset import Dataset


def action_stats(ds: Dataset) -> dict:
    counts: dict[str, float] = {}
    cam = []
    steps = 0
    modes: dict[int, int] = {}
    for i in range(len(ds)):
        ep = ds.episode(i)
        steps += len(ep)
        if "mode" in ep.infos:  # recorded by a policy mix (worldsim.agents.mix): per frame, the mode that led into it
            ids, n = np.unique(np.asarray(ep.infos["mode"])[1:], return_counts=True)
            for m, c in zip(ids.tolist(), n.tolist()):
                modes[m] = modes.get(m, 0) + c
        for k, v in ep.actions.items():
            if k == "camera":
                cam.append(np.asarray(v, np.float64))
            else:
                counts[k] = counts.get(k, 0) + int(np.sum(v))
    out: dict = {"steps": steps, "episodes": len(ds),
                 "pressed_fraction": {k: round(c / max(steps, 1), 4) for k, c in sorted(counts.items())}}
    if modes:
        from worldsim.agents.mix import MODES

        out["mode_fraction"] = {MODES[m] if 0 <= m < len(MODES) else str(m): round(c / max(steps, 1), 4)
                                for m, c in sorted(modes.items())}
    if cam:
        c = np.concatenate(cam)
        still = np.all(c == 0, axis=1)
        moving = np.abs(c) > 0.05
        out["camera"] = {
            "pitch_abs_mean_deg": round(float(np.abs(c[:, 0]).mean()), 3),
            "yaw_abs_mean_deg": round(float(np.abs(c[:, 1]).mean()), 3),
            "pitch_moving_fraction": round(float(moving[:, 0].mean()), 4),
            "yaw_moving_fraction": round(float(moving[:, 1].mean()), 4),
            "pitch_p99_abs_deg": round(float(np.percentile(np.abs(c[:, 0]), 99)), 3),
            "yaw_p99_abs_deg": round(float(np.percentile(np.abs(c[:, 1]), 99)), 3),
            "exactly_still_fraction": round(float(still.mean()), 4),
        }
    return out


def format_stats(stats: dict) -> str:
    lines = [f"{stats['episodes']} episodes, {stats['steps']} steps"]
    if "mode_fraction" in stats:
        lines.append("  policy mix " + ", ".join(f"{k} {100 * f:.1f}%" for k, f in stats["mode_fraction"].items()))
    for k, f in stats["pressed_fraction"].items():
        lines.append(f"  {k:<10} held {100 * f:5.1f}% of steps")
    if "camera" in stats:
        c = stats["camera"]
        lines.append(f"  camera     pitch moves {100 * c['pitch_moving_fraction']:.0f}% of steps (mean |Δ| {c['pitch_abs_mean_deg']}°), "
                     f"yaw moves {100 * c['yaw_moving_fraction']:.0f}% (mean |Δ| {c['yaw_abs_mean_deg']}°), "
                     f"exactly still {100 * c.get('exactly_still_fraction', 0):.0f}%")
    return "\n".join(lines)
