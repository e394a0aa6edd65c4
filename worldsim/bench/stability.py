"""Long-rollout stability of the neural env: NaNs, memory growth, whether frames collapse to a flat image, and how
far the dream's picture statistics drift from the real game's under the very same actions."""

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


def _stats(f: np.ndarray, prev: np.ndarray) -> tuple[float, float, float, float]:
    """Of a float frame: mean, std (~0 for a flat image), local detail (mean |horizontal gradient|: edges, texture)
    and change from the frame before (mean |difference|: ~0 for a dream frozen on one picture while the game moves)."""
    return float(f.mean()), float(f.std()), float(np.abs(np.diff(f, axis=1)).mean()), float(np.abs(f - prev).mean())


def _per_window(x: np.ndarray, windows: list[np.ndarray], digits: int = 2) -> list[float]:
    return [round(float(x[w].mean()), digits) for w in windows]


def real_game_stats(steps: int, seed: int, size: int, progress: bool = True, context: int = 4) -> tuple[np.ndarray, float]:
    """(steps, 4) per-step (mean, std, detail, change) of the real game played by the same explore agent with the
    same seed as the dream (the agent never reads the screen, so both get the same actions), from the same start
    (`worldsim.envs.neural.start_from_env`: reset, then `context`-1 steps standing still); a game over restarts the game and
    the agent plays on. Also the game's steps/s."""
    import gymnasium as gym
    from tqdm import tqdm

    import worldsim.envs  # noqa: F401
    from worldsim.agents import make_policy
    from worldsim.envs.neural import start_from_env

    env = gym.make("worldsim/MinecraftIndev-v0", size=size)
    pol = make_policy("explore", env.action_space, seed=seed)
    obs, _ = start_from_env(env, seed, context)
    prev = obs.astype(np.float32)
    out = np.zeros((steps, 4), np.float64)
    t0 = time.perf_counter()
    for t in tqdm(range(steps), desc="real game, same actions", disable=not progress):
        obs, _, terminated, truncated, _ = env.step(pol.act(obs))
        f = obs.astype(np.float32)
        out[t] = _stats(f, prev)
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + t + 1)
            f = obs.astype(np.float32)
        prev = f
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return out, rate


def stability(checkpoint: str | None, steps: int = 10000, seed: int = 0, out: str | None = None,
              progress: bool = True, real: bool = True) -> dict[str, Any]:
    """Dream `steps` frames under the explore agent and report NaN steps, memory, flat frames and per-window picture
    statistics; with `real`, the same statistics of the real game under the same actions, and the dream's std,
    detail and frame-to-frame change as a share of the real game's per window: a dream that drifts into a view the
    game would not show (all sky while the player looks ahead) or freezes on one picture shows up there even when
    no frame is flat. With `real`, the dream starts from the game's own first frames and view pitch (what
    `play --side-by-side` does), so both start in the same place; without, from an opening of the checkpoint."""
    import gymnasium as gym
    import torch
    from tqdm import tqdm

    import worldsim.envs  # noqa: F401
    from worldsim.agents import make_policy
    from worldsim.envs.neural import start_from_env

    env = gym.make("worldsim/NeuralMinecraft-v0", checkpoint=checkpoint)
    size = int(env.observation_space.shape[0])
    pol = make_policy("explore", env.action_space, seed=seed)
    k = env.unwrapped.context_length
    options = None
    if real:
        game = gym.make("worldsim/MinecraftIndev-v0", size=size)
        options = start_from_env(game, seed, k, env.action_space)[1]
        game.close()
    obs, _ = env.reset(seed=seed, options=options)
    prev = obs.astype(np.float32)
    dream, rss, nan_steps = np.zeros((steps, 4), np.float64), [], 0
    t0 = time.perf_counter()
    for t in tqdm(range(steps), desc="stability", disable=not progress):
        obs, *_ = env.step(pol.act(obs))
        lat = env.unwrapped._sampler.latents
        if not torch.isfinite(lat).all():
            nan_steps += 1
        f = obs.astype(np.float32)
        dream[t] = _stats(f, prev)
        prev = f
        if t % 100 == 0:
            rss.append(_rss_mb())
    elapsed = time.perf_counter() - t0
    env.close()
    windows = np.array_split(np.arange(steps), min(10, steps))
    result = {
        "steps": steps, "seconds": round(elapsed, 1), "fps": round(steps / elapsed, 2), "nan_steps": nan_steps,
        "rss_mb_first_last": [round(rss[0], 1), round(rss[-1], 1)],
        "frame_std_per_window": _per_window(dream[:, 1], windows),
        "frame_mean_per_window": _per_window(dream[:, 0], windows),
        "edge_per_window": _per_window(dream[:, 2], windows, 3),
        "change_per_window": _per_window(dream[:, 3], windows, 3),
        "flat_frames": int((dream[:, 1] < 2.0).sum()),
    }
    game = None
    if real:
        game, rate = real_game_stats(steps, seed, size, progress, context=k)
        result["real"] = {"frame_std_per_window": _per_window(game[:, 1], windows),
                          "frame_mean_per_window": _per_window(game[:, 0], windows),
                          "edge_per_window": _per_window(game[:, 2], windows, 3),
                          "change_per_window": _per_window(game[:, 3], windows, 3), "steps_per_s": round(rate, 1)}
        result["dream_over_real"] = {
            name: [round(float(dream[w, i].mean() / max(game[w, i].mean(), 1e-9)), 3) for w in windows]
            for name, i in (("std_per_window", 1), ("edge_per_window", 2), ("change_per_window", 3))}
    if out:
        _plot(dream, game, steps, Path(out), result)
    return result


def many_dreams(checkpoint: str | None, dreams: int = 8, steps: int = 1500, windows: int = 6, seed: int = 0,
                progress: bool = True) -> dict[str, Any]:
    """`dreams` dreams at once (one vector env, started from the checkpoint's openings with seeds seed..seed+N-1,
    the explore agent in each) for `steps` steps; per window, the share of frames that have lost the picture:
    low contrast (std < 20 grey levels; the game's frames average ~57) and, among those, dark (mean < 100, the
    dug-in state long dreams fall into). Why: one long trajectory is one sample of a chaotic system; this says how
    often dreams degenerate, so two samplers or checkpoints can be set side by side."""
    import gymnasium as gym
    from tqdm import tqdm

    import worldsim.envs  # noqa: F401
    from worldsim.agents import make_policy

    if dreams < 1 or steps < windows:
        raise ValueError(f"many_dreams needs dreams >= 1 and steps >= windows ({windows}), got {dreams} and {steps}")
    venv = gym.make_vec("worldsim/NeuralMinecraft-v0", num_envs=dreams, vectorization_mode="vector_entry_point",
                        checkpoint=checkpoint)
    obs, _ = venv.reset(seed=seed)
    pols = [make_policy("explore", venv.single_action_space, seed=seed + i) for i in range(dreams)]
    std, mean = np.zeros((steps, dreams)), np.zeros((steps, dreams))
    t0 = time.perf_counter()
    for t in tqdm(range(steps), desc=f"{dreams} dreams", disable=not progress):
        acts = [p.act(obs[i]) for i, p in enumerate(pols)]
        obs, *_ = venv.step({k: np.stack([a[k] for a in acts]) for k in acts[0]})
        f = obs.reshape(dreams, -1).astype(np.float32)
        std[t], mean[t] = f.std(1), f.mean(1)
    elapsed = time.perf_counter() - t0
    venv.close()
    low = std < 20
    split = np.array_split(np.arange(steps), windows)
    return {"dreams": dreams, "steps": steps, "seconds": round(elapsed, 1), "frames_per_s": round(dreams * steps / elapsed, 1),
            "low_contrast_share_per_window": _per_window(low, split, 3),
            "dark_flat_share_per_window": _per_window(low & (mean < 100), split, 3),
            "frame_std_per_window": _per_window(std, split)}


def _plot(dream: np.ndarray, game: np.ndarray | None, steps: int, out: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from worldsim.io.atomic import write_json_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "stability.json", result)
    fig, ax = plt.subplots(4, 1, figsize=(7, 7.5), sharex=True, dpi=110)
    labels = ("frame mean", "frame std (0 = flat)", "mean |horizontal gradient|", "change from last frame")
    for i, (a, label) in enumerate(zip(ax, labels)):
        if game is not None:
            a.plot(game[:, i], lw=0.5, color="0.6", label="real game, same actions")
        a.plot(dream[:, i], lw=0.5, color="C0", label="dream")
        a.set_ylabel(label, fontsize=8)
    if game is not None:
        ax[0].legend(fontsize=7, loc="upper right")
    ax[-1].set_xlabel("step")
    fig.suptitle(f"{steps}-step dream, explore agent")
    fig.tight_layout()
    fig.savefig(out / "stability.png")
    plt.close(fig)
