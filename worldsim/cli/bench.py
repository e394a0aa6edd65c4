"""`worldsim bench`: throughput (collect, neural, all), whether the dream holds its world (hold), and long-dream
stability. Benches measure and print; they never assert."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from worldsim.cli.options import add_command, add_world_model, json_file


def _hold(a: argparse.Namespace) -> dict:
    from worldsim.bench.hold import LEVEL_SCENARIOS, hold_bench

    h = hold_bench(a.checkpoint, seeds=a.seeds, still_steps=a.still_steps, play_steps=a.play_steps,
                   random_steps=a.random_steps, long_steps=a.long_steps, sampling_steps=(a.sampling_steps or [None])[0],
                   out=str(Path(a.out).parent) if a.out else None, progress=True, real_cache=a.real_cache,
                   settle=a.settle)
    print(f"still {h['still']['steps']} steps: dream {h['still']['model_db']} dB, copy-last {h['still']['copy_last_db']} dB, "
          f"autoencoder {h['still']['autoencoder_db']} dB")
    for name in ("turn90", "turn180", "look"):
        print(f"{name} and back: dream {h[name]['model_db']} dB, copy-start {h[name]['copy_start_db']} dB, "
              f"autoencoder {h[name]['autoencoder_db']} dB")
    for name in ("play", "random"):
        r = h[name]
        print(f"{name} {r['steps']} steps: colour overlap min {r['colour_overlap_min']} (real pairs min "
              f"{r['real_overlap_min']}), contrast min {r['contrast_min']} (real {r['real_contrast_range']})")
    mv = h["walk"]["moved"]
    print(f"walking, PSNR to the start frame after {mv['steps']} steps (lower: it moved): dream {mv['dream_db']}, "
          f"real {mv['real_db']}")
    for name in LEVEL_SCENARIOS:
        for lv in h[name]["levels"]:
            if lv["starts"]:
                print(f"{name} after {lv['step']} steps, dream / real: brightness {lv['brightness_median']} "
                      f"(per start {lv['brightness']}), contrast {lv['contrast_median']} (per start {lv['contrast']})")
    return {"hold": h}


def _stability(a: argparse.Namespace) -> dict:
    from worldsim.bench.stability import many_dreams, stability

    if a.dreams > 1:  # how often dreams degenerate, over many at once
        r = many_dreams(a.checkpoint, dreams=a.dreams, steps=a.steps)
        print(json.dumps(r))
        return {"many_dreams": r}
    return {"stability": stability(a.checkpoint, steps=a.steps, out=str(Path(a.out).parent) if a.out else None,
                                   real=not a.no_real)}


def _neural(a: argparse.Namespace) -> dict:
    from worldsim.bench.throughput import bench_neural, bench_train

    n = bench_neural(a.checkpoint, batch_sizes=tuple(a.batch_sizes), sampling_steps=tuple(a.sampling_steps or (1, 2)),
                     compile=a.compile)
    train = {"small": bench_train("small")}
    for prec, by_steps in n["single"].items():
        for steps, fps in by_steps.items():
            print(f"neural env{', compiled' if a.compile else ''}, {prec}, {steps} sampling step(s): single {fps} FPS; vector " +
                  ", ".join(f"N={k}: {v}" for k, v in n["vector"][prec][steps].items()) + " frames/s")
        print(f"decode ({prec}) {n['decode_ms'][prec]} ms/frame")
    for name, t in train.items():
        print(f"training {name}: {t['samples_per_s']} samples/s of "
              f"{t['frames_per_sample']} frames = {t['frames_per_s']} frames/s")
    return {"neural": n, "train": train}


def _collect(a: argparse.Namespace) -> dict:
    from worldsim.bench.throughput import bench_collector, bench_env

    env = bench_env(steps=a.steps, repeats=a.repeats, size=a.size)
    collector = bench_collector(episodes=a.episodes, steps=a.steps, workers=a.workers, size=a.size)
    print(f"Indev game env: {env['steps_per_s_median']} steps/s (median of {a.repeats}), reset {env['reset_s_median']} s; "
          f"collector: {collector['steps_per_s']} steps/s with {a.workers} workers")
    return {"env": env, "collector": collector}


BENCHES = {"hold": (_hold,), "stability": (_stability,), "neural": (_neural,), "collect": (_collect,),
           "all": (_neural, _collect)}


def _bench(a: argparse.Namespace) -> int:
    from worldsim.bench.throughput import machine_info
    from worldsim.io.atomic import write_json_atomic

    result: dict = {"machine": machine_info()}
    for run in BENCHES[a.what]:
        result.update(run(a))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(a.out, result)
    print(json.dumps(result, indent=1))
    return 0


def register(sub) -> None:
    b = add_command(sub, "bench", "measure throughput, holding the world and stability (never asserts)", _bench)
    b.add_argument("what", choices=list(BENCHES), nargs="?", default="all",
                   help="hold: does the dream hold the world (standing still, turning away and back, walking, turning in place, long play, random keys)")
    add_world_model(b, sampling_steps_nargs="+")
    b.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128], help="neural: vector env sizes")
    b.add_argument("--compile", action="store_true", help="neural: the envs fuse their network passes (torch.compile; "
                   "each batch size compiles before it is timed)")
    b.add_argument("--seeds", type=int, default=4, help="hold: real starts (reset seeds 0..N-1)")
    b.add_argument("--still-steps", type=int, default=100, help="hold: steps standing still")
    b.add_argument("--play-steps", type=int, default=2000, help="hold: steps of human-like play")
    b.add_argument("--random-steps", type=int, default=1000, help="hold: steps of uniform random actions")
    b.add_argument("--long-steps", type=int, default=1000, help="hold: steps standing still, walking and turning in place, for the "
                   "brightness and contrast after 100 steps and at the end")
    b.add_argument("--settle", type=int, default=None, help="hold: steps the real game stands still after each reset "
                   "before the start frames, while the loaded world's fog brightens (default 60; 0: start at the reset)")
    b.add_argument("--real-cache", help="hold: an .npz of the real game's runs, written the first time and read after, "
                   "so several models meet the same real frames")
    b.add_argument("--steps", type=int, default=500, help="steps per episode (collect) or dream length (stability)")
    b.add_argument("--no-real", action="store_true", help="stability: skip playing the real game with the same actions")
    b.add_argument("--dreams", type=int, default=1, help="stability: N > 1 runs N dreams at once (from the openings) and "
                   "reports the share of frames that lost the picture per window, instead of one dream against the game")
    b.add_argument("--repeats", type=int, default=3, help="collect: env timings, median taken")
    b.add_argument("--episodes", type=int, default=4, help="collect: episodes the collector plays")
    b.add_argument("--workers", type=int, default=2, help="collect: collector worker processes")
    b.add_argument("--size", type=int, default=64, help="collect: frame size")
    b.add_argument("--out", type=json_file, help="also write the results as JSON here")
