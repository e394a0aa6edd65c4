"""Throughput benchmarks of the real game and the collector (`worldsim bench collect`). Measures, never asserts."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from typing import Any

import numpy as np


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


def bench_env(env_id: str = "worldsim/MinecraftClassic-v0", steps: int = 500, repeats: int = 3, size: int = 64,
              policy: str = "explore", seed: int = 0) -> dict[str, Any]:
    """Steps/s of the env alone (policy time excluded), median over `repeats` fresh episodes; reset time too."""
    import gymnasium as gym

    import envs  # noqa: F401
    from agents import make_policy

    env = gym.make(env_id, size=size)
    pol = make_policy(policy, env.action_space, seed=seed)
    rates, resets = [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        obs, info = env.reset(seed=seed + r)
        resets.append(time.perf_counter() - t0)
        pol.reset(seed=seed + r)
        actions = [pol.act(obs) for _ in range(steps)]  # open-loop, so only env time is measured
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        rates.append(steps / (time.perf_counter() - t0))
    env.close()
    return {"env_id": env_id, "size": size, "steps": steps, "repeats": repeats,
            "steps_per_s_median": round(statistics.median(rates), 1), "steps_per_s_all": [round(x, 1) for x in rates],
            "reset_s_median": round(statistics.median(resets), 3)}


def bench_collector(episodes: int = 4, steps: int = 500, workers: int = 2, size: int = 64) -> dict[str, Any]:
    """End-to-end collector throughput (play + encode + atomic writes), into a throw-away folder."""
    from data_collect.collect import CollectConfig, collect

    with tempfile.TemporaryDirectory() as d:
        cfg = CollectConfig(episodes=episodes, steps=steps, workers=workers, size=size, out=f"{d}/ds")
        s = collect(cfg, progress=False)
    return {"episodes": episodes, "steps": steps, "workers": workers, "size": size,
            "steps_per_s": s["steps_per_s"], "seconds": s["seconds"]}


def frames_differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
