"""The report of an evaluation: its verdict in words, and the pictures people would rather see than read
(PSNR-over-horizon plots, real-vs-dream strips, an mp4, the break events)."""

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
                        ("camera_shift", "last frame moved by the camera"), ("walk_blind", "walk-blind (movement keys released)")):
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


def write_report(out: str | os.PathLike, result: dict[str, Any], examples: list, breaks: list) -> Path:
    """report.json (with the verdict), PSNR/SSIM-over-horizon plots, real_vs_dream.png/.mp4 and break_events.png
    of an `evaluate` result in `out`; `examples`, `breaks`: what `evaluate` set aside to draw."""
    from PIL import Image

    from worldsim.io.atomic import write_json_atomic
    from worldsim.io.video import write_mp4

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result["verdict"] = verdict(result)
    write_json_atomic(out / "report.json", result)
    plot_horizon(result, out / "psnr_over_horizon.png")
    plot_horizon(result, out / "ssim_over_horizon.png", metric="ssim")
    rows = []
    for ctx, real, dream, _ in examples[:2]:
        rows += [np.concatenate([ctx, real]), np.concatenate([ctx, dream])]
    Image.fromarray(strip(rows, scale=2)).save(out / "real_vs_dream.png")
    grid = [np.concatenate([real[t], dream[t]], axis=1) for _, real, dream, _ in examples[:1] for t in range(len(real))]
    write_mp4(out / "real_vs_dream.mp4", grid, fps=10, scale=4)
    if breaks:  # one row per block broken: frame before | real after | dream, attack pressed | dream, released
        Image.fromarray(strip([np.stack(event) for event in breaks], scale=2)).save(out / "break_events.png")
    return out / "report.json"


def summary(result: dict[str, Any]) -> list[str]:
    """The table a terminal shows: PSNR by horizon for the model and each baseline, then the IDM's scores."""
    m, horizon = result["metrics"], result["horizon"]
    cols = [n for n in ("model", "action_blind", "copy_last", "camera_shift", "walk_blind") if f"{n}_psnr" in m]
    lines = [f"{'h':>3} " + " ".join(f"{n:>12}" for n in cols) + f"   (PSNR dB, {result['clips']} clips)"]
    for h in sorted({0, 3, 7, 15, horizon - 1} & set(range(horizon))):
        lines.append(f"{h + 1:>3} " + " ".join(f"{m[f'{n}_psnr']['mean'][h]:12.2f}" for n in cols))
    if "idm" in result:
        r, d = result["idm"]["real"], result["idm"]["dream"]
        lines.append(f"IDM key F1 real {r['key_f1']:.3f} / dream {d['key_f1']:.3f}; camera error real "
                     f"{r['camera_mae_deg']:.2f} deg / dream {d['camera_mae_deg']:.2f} deg")
    for name, o in result.get("outcomes", {}).items():
        if isinstance(o, dict) and o["events"]:
            lines.append(f"outcome head {name}: {o['events']} real events, {o['predicted']} predicted, precision "
                         f"{_share(o['precision'])}, recall {_share(o['recall'])}")
    return lines


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def verdict(result: dict) -> list[str]:
    """The report in words: where the model stands against copy-last-frame, action-blind and the IDM."""
    m, h = result["metrics"], result["horizon"]
    model, copy, blind = (m[f"{n}_psnr"]["mean"] for n in ("model", "copy_last", "action_blind"))
    lines = [f"h1: model {model[0]:.2f} dB vs copy-last {copy[0]:.2f} dB ({model[0] - copy[0]:+.2f} dB; target +3)."]
    if model[0] <= copy[0]:
        lines.append("The model does not beat copying the last frame at h1: it is not predicting the next frame.")
    last = min(h, 16) - 1
    lines.append(f"h{last + 1}: model {model[last]:.2f} dB vs copy-last {copy[last]:.2f} dB "
                 f"({'above' if model[last] > copy[last] else 'NOT above'} it).")
    h8 = min(h, 8) - 1
    gap = model[h8] - blind[h8]
    lines.append(f"h{h8 + 1}: action-blind is {gap:.2f} dB below the model (target 1 dB): "
                 + ("the model uses the actions." if gap >= 1 else "the model uses the actions too little."))
    if "walk_blind_psnr" in m:
        walk = model[h8] - m["walk_blind_psnr"]["mean"][h8]
        lines.append(f"h{h8 + 1}: walk-blind (movement keys released) is {walk:.2f} dB below the model: of the action-blind "
                     f"gap, {'walking' if walk >= 0.5 * max(gap, 1e-9) else 'the camera'} carries the larger part.")
    if "idm" in result:
        ratio = result["idm"]["dream_over_real_key_f1"]
        lines.append(f"IDM key F1 on dreams is {100 * ratio:.0f}% of its F1 on real frames (target 80%).")
    if "camera_response" in result:
        cr = result["camera_response"]
        for axis, what in (("yaw", "turns left/right"), ("pitch", "looks up/down")):
            real, dream = cr["real"][f"{axis}_px_per_deg"], cr["dream"][f"{axis}_px_per_deg"]
            if real is None or dream is None:
                lines.append(f"{axis}: too few clear turns in these clips to measure how the dream follows them.")
                continue
            blind = cr["action_blind_over_real"][axis]
            lines.append(f"{axis}: the real game moves {real:+.2f} px per degree, the dream {dream:+.2f} "
                         f"({100 * cr['dream_over_real'][axis]:.0f}% of the real motion when it {what}; action-blind "
                         + (f"{100 * blind:.0f}%)." if blind is not None else "n/a)."))
    if "sharpness" in result:
        sh = result["sharpness"]
        lines.append(f"detail: dreamed frames keep {100 * sh['dream_over_real']:.0f}% of the real frames' pixel-to-pixel "
                     f"contrast ({sh['dream']:.1f} vs {sh['real']:.1f} grey levels; under 100%: smoothed).")
    if "levels" in result:
        lv = result["levels"]
        lines.append(f"levels: dreamed frames have {100 * lv['brightness'][0]:.0f}% of the real brightness and "
                     f"{100 * lv['contrast'][0]:.0f}% of its contrast after one step, {100 * lv['brightness'][-1]:.0f}% and "
                     f"{100 * lv['contrast'][-1]:.0f}% after {len(lv['brightness'])} (median; under 100%: darker, flatter).")
    if "break_response" in result:
        br = result["break_response"]
        lines.append(f"breaking: on {br['events']} steps that broke a block, the dream with attack pressed is closer to the real "
                     f"frame at the crosshair than with it released in {100 * br['share_closer_when_pressed']:.0f}% of them "
                     f"({br['gain_db']:+.2f} dB there).")
    return lines
