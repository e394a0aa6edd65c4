"""Pictures people would rather see than read: PSNR-over-horizon plots and real-vs-dream strips and grids."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def plot_horizon(result: dict[str, Any], path: str | os.PathLike, metric: str = "psnr") -> Path:
    """Metric per horizon step for the model and the baselines, with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    h = np.arange(1, result["horizon"] + 1)
    for name, label in (("model", "world model"), ("action_blind", "action-blind (no-op actions)"), ("copy_last", "copy last frame"),
                        ("camera_shift", "last frame moved by the camera")):
        if f"{name}_{metric}" not in result["metrics"]:
            continue
        m = result["metrics"][f"{name}_{metric}"]
        mean, ci = np.array(m["mean"]), np.array(m["ci95"])
        ax.plot(h, mean, label=label)
        ax.fill_between(h, mean - ci, mean + ci, alpha=0.2)
    ax.set_xlabel("horizon (steps of 50 ms)")
    ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""))
    ax.set_title(f"open-loop dreams on {result['clips']} held-out clips")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def strip(rows: list[np.ndarray], scale: int = 2, gap: int = 2) -> np.ndarray:
    """Stack rows of frames (each (T, H, W, 3)) into one image with thin white gaps, upscaled."""
    t = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    img = np.full((len(rows) * (h + gap) - gap, t * (w + gap) - gap, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, f in enumerate(r):
            img[i * (h + gap): i * (h + gap) + h, j * (w + gap): j * (w + gap) + w] = f
    return img.repeat(scale, 0).repeat(scale, 1)
