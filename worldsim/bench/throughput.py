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


def bench_env(env_id: str = "worldsim/MinecraftIndev-v0", steps: int = 500, repeats: int = 3, size: int = 64,
              policy: str = "explore", seed: int = 0) -> dict[str, Any]:
    """Steps/s of the env alone (policy time excluded), median over `repeats` fresh episodes; reset time too."""
    import gymnasium as gym

    from worldsim.agents import make_policy

    kwargs = {"prefetch": False} if "Indev" in env_id else {}  # seeded resets: each is a cold start
    env = gym.make(env_id, size=size, **kwargs)
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
    from worldsim.data_collect.collect import CollectConfig, collect

    with tempfile.TemporaryDirectory() as d:
        cfg = CollectConfig(episodes=episodes, steps=steps, workers=workers, size=size, out=f"{d}/ds")
        s = collect(cfg, progress=False)
    return {"episodes": episodes, "steps": steps, "workers": workers, "size": size,
            "steps_per_s": s["steps_per_s"], "seconds": s["seconds"]}


def bench_neural(checkpoint: str | None, batch_sizes=(1, 8, 32, 128), sampling_steps=(1, 2), frames: int = 20,
                 device: str = "auto", precisions=("fp32", "bf16"), repeats: int = 3, compile: bool = False) -> dict[str, Any]:
    """Dreamed frames/s: the single env and the vector env for each N, per sampling-step setting and precision
    (medians of `repeats` timed runs after a warm-up, which is where a compiled env compiles), and which
    precision "auto" picks here."""
    import gymnasium as gym
    import torch

    import worldsim
    from worldsim.agents import make_policy

    def median_rate(step, count: int, reps: int) -> float:
        step()
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(reps):
                step()
            rates.append(count * reps / (time.perf_counter() - t0))
        return round(float(np.median(rates)), 2)

    out: dict[str, Any] = {"checkpoint": checkpoint or "default", "compiled": compile, "machine": machine_info(),
                           "single": {}, "vector": {}, "decode_ms": {}}
    for precision in precisions:
        env = gym.make("worldsim/NeuralMinecraft-v0", checkpoint=checkpoint, device=device, precision=precision,
                       compile=compile)
        model = env.unwrapped.model
        prec = model.precision
        if prec in out["single"]:
            env.close()
            continue
        out["single"][prec], out["vector"][prec] = {}, {}
        for steps in sampling_steps:
            env.unwrapped.sampling_steps = steps  # read at the next reset
            pol = make_policy("explore", env.action_space, seed=0)
            state = {"obs": env.reset(seed=0)[0]}

            def single_step(env=env, pol=pol, state=state):
                state["obs"] = env.step(pol.act(state["obs"]))[0]

            out["single"][prec][str(steps)] = median_rate(single_step, 1, frames)
            out["vector"][prec][str(steps)] = {}
            for n in batch_sizes:
                vec = gym.make_vec("worldsim/NeuralMinecraft-v0", num_envs=n, vectorization_mode="vector_entry_point",
                                   checkpoint=checkpoint, device=device, sampling_steps=steps, precision=precision,
                                   compile=compile)
                vec.reset(seed=0)
                space = vec.unwrapped.single_action_space
                acts = {k: np.stack([v] * n) for k, v in make_policy("explore", space, seed=0).act(None).items()}
                out["vector"][prec][str(steps)][str(n)] = median_rate(lambda vec=vec, acts=acts: vec.step(acts), n, max(2, frames // max(1, n // 4)))
                vec.close()
        with torch.no_grad():
            z = model.encode(torch.zeros(1, *model.cfg.frame_hw, 3, dtype=torch.uint8))
            out["decode_ms"][prec] = round(1000 / median_rate(lambda model=model, z=z: model.decode(z), 1, 50), 2)
        env.close()
    out["auto_picks"] = worldsim.load(checkpoint, device, "auto", compile).precision
    return out


def bench_train(checkpoint_cfg: str = "small", batch: int | None = None, steps: int = 6) -> dict[str, Any]:
    """Dynamics-model training throughput of a preset on random latents (bf16 where the hardware runs it), on
    sequences of its short length, as frames/s (frames of the sequences the loss sees per second)."""
    import torch

    from worldsim.envs.actions import minerl_action_space
    from worldsim.envs.indev.env import INDEV_KEYS
    from worldsim.model.actions import space_to_json
    from worldsim.model.world_model import WorldModel
    from worldsim.training.config import preset
    from worldsim.training.objective import sequence_loss
    from worldsim.training.trainer import bf16_is_native

    p = preset(checkpoint_cfg)
    cfg, tc = p.model, p.train
    cfg.action_space_json = space_to_json(minerl_action_space(INDEV_KEYS))
    m = WorldModel(cfg).train()
    opt = torch.optim.AdamW(m.dit.parameters(), 1e-4)
    batch = batch or tc.dit_batch
    frames = tc.seq_len
    z = torch.randn(batch, frames, cfg.ae.latent_channels, *cfg.latent_hw)
    a = torch.zeros(batch, frames, m.codec.dim)
    known = torch.ones(batch, frames)
    bf16 = bf16_is_native(torch.device("cpu"))
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            moved = torch.randn_like(z) if cfg.motion_prior else None  # the speed does not depend on the prior's values
            loss = sequence_loss(m, z, a, known, tc.bootstrap_share, tc.rollout_share, tc.context_min, moved=moved)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    rate = batch * steps / (time.perf_counter() - t0)
    return {"preset": checkpoint_cfg, "batch": batch, "frames_per_sample": frames,
            "bf16": bf16, "samples_per_s": round(rate, 1), "frames_per_s": round(rate * frames, 1)}
