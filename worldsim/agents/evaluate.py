"""Score a policy on a task: episode returns over fixed seeds, mean and a 95% bootstrap interval.

The same seeds for every policy, so random, explore and a trained agent face the same worlds; in the real game
seed i builds world i, in the neural env it picks opening clip and dream noise i.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def interval95(values: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean (no normality assumption; episode returns are counts)."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return (float(v.mean()), float(v.mean())) if len(v) else (float("nan"), float("nan"))
    means = v[np.random.default_rng(seed).integers(0, len(v), (resamples, len(v)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def evaluate_policy(env_id: str, policy: str, episodes: int = 20, seed: int = 0, task: str | None = None,
                    progress: bool = True, deterministic: bool = False, episode_steps: int | None = None,
                    **env_kwargs) -> dict[str, Any]:
    """Run `episodes` episodes (seeds seed .. seed+episodes-1) of `policy` in `env_id` under `task`.
    `deterministic`: a trained policy takes its most likely action instead of sampling one. `episode_steps`:
    shorter episodes than the task's (dreams only)."""
    from tqdm import tqdm

    import worldsim.envs  # noqa: F401
    from worldsim.agents import make_policy
    from worldsim.envs.tasks import make_task_env

    env = make_task_env(env_id, task, episode_steps=episode_steps, **env_kwargs)
    pol = make_policy(policy, env.action_space, seed=seed)
    if hasattr(pol, "deterministic"):
        pol.deterministic = deterministic
    returns, lengths = [], []
    t0, steps = time.time(), 0
    try:
        for i in tqdm(range(episodes), desc=f"eval {policy}", disable=not progress):
            obs, info = env.reset(seed=seed + i)
            pol.reset(seed=seed + i)
            total, n, done = 0.0, 0, False
            while not done:
                obs, r, term, trunc, info = env.step(pol.act(obs, info))
                total, n, done = total + float(r), n + 1, term or trunc
            returns.append(total)
            lengths.append(n)
            steps += n
    finally:
        env.close()
    lo, hi = interval95(returns)
    return {"env_id": env_id, "task": task, "policy": policy, "deterministic": deterministic, "episodes": episodes,
            "seeds": [seed, seed + episodes - 1], "episode_steps": episode_steps,
            "env_kwargs": {k: str(v) for k, v in env_kwargs.items()},
            "mean_return": float(np.mean(returns)), "ci95": [lo, hi], "std": float(np.std(returns)),
            "returns": returns, "mean_length": float(np.mean(lengths)),
            "steps_per_s": round(steps / (time.time() - t0), 1)}
