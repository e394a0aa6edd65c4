"""The project's scaling curve: one row per training sitting (`docs/training_log.json`), plotted against the
compute behind each row, with the baselines the model has to beat.

A row: {"date", "cpu_hours", "frames_seen", "psnr": {"1": .., "4": .., "8": .., "16": ..}, "copy_last": {...},
"action_blind": {...}, ...}; the figure shows PSNR at each horizon against cumulative CPU-hours, copy-last dashed.
A row's "lineage" (default "campaign") names the run it continues: a run that had to start again from the shipped
model (its folder lost) is a line of its own, at the compute of the model it started from.
"""

from __future__ import annotations

import itertools
import json
import os
import textwrap
from pathlib import Path


def plot_curve(log: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Plot the rows of a training log (JSON list) to a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(Path(log).read_text())
    if not rows:
        raise ValueError(f"{log} holds no rows")
    def lineage(r: dict) -> str:
        return r.get("lineage", "campaign")

    lineages = list(dict.fromkeys(lineage(r) for r in rows))
    styles = dict(zip(lineages, itertools.cycle(("o-", "^:", "s-.", "d--"))))

    def lines(ax, key, colour, label, style=None, alpha=1.0):
        for i, name in enumerate(lineages):  # each lineage its own marker; the label names it once, on the first
            part = [r for r in rows if lineage(r) == name and key(r) is not None]
            ax.plot([r["cpu_hours"] for r in part], [key(r) for r in part], style or styles[name], color=colour,
                    alpha=alpha, label=label if i == 0 else None)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for h, colour in zip(("1", "4", "8", "16"), ("C0", "C1", "C2", "C3")):
        lines(axes[0], lambda r, h=h: r["psnr"][h], colour, f"model h{h}")
        lines(axes[0], lambda r, h=h: r["copy_last"][h], colour, f"copy-last h{h}", "--", 0.6)
    axes[0].set_xlabel("cumulative CPU-hours of training")
    axes[0].set_ylabel("held-out PSNR (dB)")
    axes[0].set_title("held-out clips")
    axes[0].legend(fontsize=6, ncol=2, loc="lower right")
    for key, colour in (("brightness_1000", "C4"), ("contrast_1000", "C5")):
        lines(axes[1], lambda r, key=key: r.get(key), colour, key.replace("_", " after ") + " steps still (dream / real)")
    for i, (what, colour) in enumerate((("brightness", "C6"), ("contrast", "C7"))):  # rows that measured walking
        lines(axes[1], lambda r, i=i: (r.get("levels_1000") or {}).get("walk", [None, None])[i], colour,
              f"{what} after 1000 steps walking (dream / real)")
    axes[1].axhspan(0.8, 1.25, color="green", alpha=0.1, label="0.8-1.25: the target")
    axes[1].set_xlabel("cumulative CPU-hours of training")
    axes[1].set_title("standing still and walking from the real starts")
    axes[1].legend(fontsize=6, loc="upper right")
    title = "worldsim: the scaling curve (docs/training_log.md)"
    if len(lineages) > 1:
        title += "\n" + "\n".join(textwrap.wrap("; ".join(f"{styles[n][0]} {n}" for n in lineages), 150))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(out)
    return out
