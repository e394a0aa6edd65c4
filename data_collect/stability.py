"""Long-rollout stability of the neural env: NaNs, memory growth and whether frames collapse to a flat image."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import numpy as np


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 1e6
    except OSError:
        return float("nan")


def stability(checkpoint: str | None, steps: int = 10000, seed: int = 0, out: str | None = None,
              progress: bool = True) -> dict[str, Any]:
    import gymnasium as gym
    import torch
    from tqdm import tqdm

    import envs  # noqa: F401
    from agents import make_policy

    env = gym.make("worldsim/NeuralMinecraft-v0", checkpoint=checkpoint)
    pol = make_policy("explore", env.action_space, seed=seed)
    obs, _ = env.reset(seed=seed)
    means, stds, spatial, rss, nan_steps = [], [], [], [], 0
    t0 = time.perf_counter()
    for t in tqdm(range(steps), desc="stability", disable=not progress):
        obs, *_ = env.step(pol.act(obs))
        lat = env.unwrapped._dreamer.latents
        if not torch.isfinite(lat).all():
            nan_steps += 1
        f = obs.astype(np.float32)
        means.append(f.mean())
        stds.append(f.std())  # ~0 for a flat image
        spatial.append(np.abs(np.diff(f, axis=1)).mean())  # local detail (edges, texture)
        if t % 100 == 0:
            rss.append(_rss_mb())
    elapsed = time.perf_counter() - t0
    env.close()
    means, stds, spatial = map(np.asarray, (means, stds, spatial))
    windows = np.array_split(np.arange(steps), min(10, steps))
    result = {
        "steps": steps, "seconds": round(elapsed, 1), "fps": round(steps / elapsed, 2), "nan_steps": nan_steps,
        "rss_mb_first_last": [round(rss[0], 1), round(rss[-1], 1)],
        "frame_std_per_window": [round(float(stds[w].mean()), 2) for w in windows],
        "frame_mean_per_window": [round(float(means[w].mean()), 2) for w in windows],
        "edge_per_window": [round(float(spatial[w].mean()), 3) for w in windows],
        "flat_frames": int((stds < 2.0).sum()),
    }
    if out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from worldsim.atomic import write_json_atomic

        Path(out).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out) / "stability.json", result)
        fig, ax = plt.subplots(3, 1, figsize=(7, 6), sharex=True, dpi=110)
        for a, y, label in zip(ax, (means, stds, spatial), ("frame mean", "frame std (0 = flat)", "mean |horizontal gradient|")):
            a.plot(y, lw=0.5)
            a.set_ylabel(label, fontsize=8)
        ax[-1].set_xlabel("step")
        fig.suptitle(f"{steps}-step dream, explore agent")
        fig.tight_layout()
        fig.savefig(Path(out) / "stability.png")
        plt.close(fig)
    return result
