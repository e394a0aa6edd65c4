"""The project's scaling curve: one row per training sitting (`docs/training_log.json`), plotted against the
compute behind each row, with the baselines the model has to beat.

A row: {"date", "cpu_hours", "frames_seen", "psnr": {"1": .., "4": .., "8": .., "16": ..}, "copy_last": {...},
"action_blind": {...}, ...}; the figure shows PSNR at each horizon against cumulative CPU-hours, copy-last dashed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def plot_curve(log: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Plot the rows of a training log (JSON list) to a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(Path(log).read_text())
    if not rows:
        raise ValueError(f"{log} holds no rows")
    x = [r["cpu_hours"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for h, colour in zip(("1", "4", "8", "16"), ("C0", "C1", "C2", "C3")):
        axes[0].plot(x, [r["psnr"][h] for r in rows], "o-", color=colour, label=f"model h{h}")
        axes[0].plot(x, [r["copy_last"][h] for r in rows], "--", color=colour, alpha=0.6, label=f"copy-last h{h}")
    axes[0].set_xlabel("cumulative CPU-hours of training")
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[0].set_title("held-out clips")
    axes[0].legend(fontsize=7, ncol=2)
    for key, style in (("brightness_1000", "o-"), ("contrast_1000", "s-")):
        if all(key in r for r in rows):
            axes[1].plot(x, [r[key] for r in rows], style, label=key.replace("_", " after ") + " steps (dream / real)")
    axes[1].axhspan(0.8, 1.25, color="green", alpha=0.1, label="0.8-1.25: the target")
    axes[1].set_xlabel("cumulative CPU-hours of training")
    axes[1].set_title("standing still from the openings")
    axes[1].legend(fontsize=7)
    fig.suptitle("worldsim: the scaling curve (docs/training_log.md)")
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(out)
    return out
