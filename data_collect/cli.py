"""The `worldsim` command: collect, import-vpt/-minerl, stats, train, eval, export, play, rollout, agent, bench."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _cmd_collect(a: argparse.Namespace) -> int:
    from data_collect.collect import CollectConfig, collect
    from data_collect.dataset import Dataset
    from data_collect.stats import action_stats, format_stats

    cfg = CollectConfig(env_id=a.env, policy=a.policy, episodes=a.episodes, steps=a.steps, out=a.out,
                        workers=a.workers, size=a.size, seed=a.seed, video=a.video, ray=a.ray)
    summary = collect(cfg, progress=not a.quiet)
    print(json.dumps(summary))
    stats = action_stats(Dataset(a.out))
    from worldsim.atomic import write_json_atomic

    write_json_atomic(Path(a.out) / "action_stats.json", stats)
    print(format_stats(stats))
    return 0


KEY_GUIDANCE_HELP = ("g: draw what pressed keys do (a broken block, a step) g times more strongly than the model's "
                     "mean guess, at one more single-frame pass per frame (default: the checkpoint's; 0: off)")


PIXEL_PRIOR_HELP = ("on: make each new frame's motion prior by moving the last frame's pixels (exact small turns), off: by "
                    "moving its latents (default: the checkpoint's)")
PRIOR_START_HELP = ("s0 in [0, 1): start sampling a turning frame at noise level s0 from its motion prior instead of from "
                    "pure noise (0: off; default: the checkpoint's)")


def _prior_sampling(model, a: argparse.Namespace) -> None:
    """--pixel-prior / --prior-start onto a loaded model (each only when given)."""
    pixel = None if a.pixel_prior is None else a.pixel_prior == "on"
    try:
        model.set_prior_sampling(pixel_prior=pixel, prior_start=a.prior_start)
    except ValueError as e:
        raise SystemExit(f"--prior-start: {e}") from None


def _neural_kwargs(a: argparse.Namespace) -> dict:
    """The world-model options of a command, passed on only when its --env is the neural env."""
    if "Neural" not in a.env:
        return {}
    return {"checkpoint": a.checkpoint, "sampling_steps": a.sampling_steps, "key_guidance": a.key_guidance}


def _cmd_rollout(a: argparse.Namespace) -> int:
    from data_collect.collect import CollectConfig, collect

    cfg = CollectConfig(env_id=a.env, policy=a.agent, episodes=a.episodes, steps=a.steps, out=a.out,
                        workers=a.workers, seed=a.seed, video=a.video, env_kwargs=_neural_kwargs(a))
    print(json.dumps(collect(cfg, progress=not a.quiet)))
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    import worldsim
    from worldsim.checkpoint import resolve, save_derived
    from worldsim.dataset import Dataset
    from worldsim.openings import cut_openings, load_openings

    src = resolve(a.checkpoint)
    model = worldsim.load(src)
    if a.sampling_steps:  # the default the exported model samples with (env/play/eval can still override it)
        model.cfg.sampler.steps = a.sampling_steps
    if a.key_guidance is not None:
        model.set_key_guidance(a.key_guidance)
    _prior_sampling(model, a)
    if a.prior_fill:  # how its rollouts fill the strip a camera move reveals (see ModelConfig.prior_fill)
        atlas = None
        if a.prior_fill == "view":
            from worldsim import view_atlas

            if not a.data:
                raise SystemExit("export --prior-fill view needs --data: the view atlas is measured on its frames")
            atlas = view_atlas.from_dataset(model, Dataset(a.data))
        model.set_prior_fill(a.prior_fill, atlas)
    bank = cut_openings(Dataset(a.data), model.codec, model.start_frames, n=a.openings, seed=a.seed) if a.data else load_openings(src)
    out = save_derived(src, a.out, model, half=a.fp16, openings=bank)
    size = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
    print(f"exported {src} -> {out} ({size:.1f} MB, {0 if bank is None else len(bank['frames'])} openings)")
    return 0


def _cmd_play(a: argparse.Namespace) -> int:
    from envs.play import PlayConfig, play

    mode = "real" if a.real else "side-by-side" if a.side_by_side else "neural"
    play(PlayConfig(mode=mode, checkpoint=a.checkpoint, image=a.image, scale=a.scale, fps=a.fps, seed=a.seed,
                    sampling_steps=a.sampling_steps, key_guidance=a.key_guidance, out_dir=a.out_dir))
    return 0


def _cmd_import(a: argparse.Namespace, kind: str) -> int:
    from data_collect.importers import import_minerl, import_vpt

    report = (import_vpt if kind == "vpt" else import_minerl)(a.src, a.out, size=a.size)
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"imported {len(report.imported)} episode(s) into {a.out}, skipped {len(report.skipped)}")
    return 0 if report.imported or not report.skipped else 1


def _cmd_stats(a: argparse.Namespace) -> int:
    from data_collect.dataset import Dataset
    from data_collect.stats import action_stats, format_stats

    stats = action_stats(Dataset(a.data))
    print(json.dumps(stats, indent=1) if a.json else format_stats(stats))
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    from data_collect import bench

    result: dict = {"machine": bench.machine_info()}
    if a.what == "hold":
        from data_collect.hold import hold_bench

        out = str(Path(a.out).parent) if a.out else None
        result["hold"] = hold_bench(a.checkpoint, seeds=a.seeds, still_steps=a.still_steps, play_steps=a.play_steps,
                                    random_steps=a.random_steps, sampling_steps=(a.sampling_steps or [None])[0],
                                    out=out, progress=True, real_cache=a.real_cache)
        h = result["hold"]
        print(f"still {h['still']['steps']} steps: dream {h['still']['model_db']} dB, copy-last {h['still']['copy_last_db']} dB, "
              f"autoencoder {h['still']['autoencoder_db']} dB")
        for name in ("turn90", "turn180", "look"):
            print(f"{name} and back: dream {h[name]['model_db']} dB, copy-start {h[name]['copy_start_db']} dB, "
                  f"autoencoder {h[name]['autoencoder_db']} dB")
        for name in ("play", "random"):
            r = h[name]
            print(f"{name} {r['steps']} steps: colour overlap min {r['colour_overlap_min']} (real pairs min "
                  f"{r['real_overlap_min']}), contrast min {r['contrast_min']} (real {r['real_contrast_range']})")
    if a.what == "stability":
        from data_collect.stability import stability

        if a.dreams > 1:  # how often dreams degenerate, over many at once
            from data_collect.stability import many_dreams

            result["many_dreams"] = many_dreams(a.checkpoint, dreams=a.dreams, steps=a.steps)
            print(json.dumps(result["many_dreams"]))
        else:
            result["stability"] = stability(a.checkpoint, steps=a.steps, out=str(Path(a.out).parent) if a.out else None,
                                            real=not a.no_real)
    if a.what in ("neural", "all"):
        result["neural"] = bench.bench_neural(a.checkpoint, batch_sizes=tuple(a.batch_sizes),
                                              sampling_steps=tuple(a.sampling_steps or (1, 3)), key_guidance=a.key_guidance)
        result["train"] = {name: bench.bench_train(name) for name in ("small", "small2")}
        n = result["neural"]
        for prec, by_steps in n["single"].items():
            for steps, fps in by_steps.items():
                print(f"neural env, {prec}, {steps} sampling step(s): single {fps} FPS; vector " +
                      ", ".join(f"N={k}: {v}" for k, v in n["vector"][prec][steps].items()) + " frames/s")
            print(f"decode ({prec}) {n['decode_ms'][prec]} ms/frame")
        for name, t in result["train"].items():
            print(f"training {name} (generation {t['generation']}): {t['samples_per_s']} samples/s of "
                  f"{t['frames_per_sample']} frames = {t['frames_per_s']} frames/s")
    if a.what in ("collect", "all"):
        result["env"] = bench.bench_env(steps=a.steps, repeats=a.repeats, size=a.size)
        result["collector"] = bench.bench_collector(episodes=a.episodes, steps=a.steps, workers=a.workers, size=a.size)
        print(f"Indev game env: {result['env']['steps_per_s_median']} steps/s (median of {a.repeats}), "
              f"reset {result['env']['reset_s_median']} s; collector: {result['collector']['steps_per_s']} steps/s "
              f"with {a.workers} workers")
    if a.out:
        from worldsim.atomic import write_json_atomic

        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(a.out, result)
    print(json.dumps(result, indent=1))
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from worldsim.train import train

    result = train(a.data, a.out, a.preset, resume=a.resume, progress=not a.quiet, init=a.init,
                   time_limit_s=a.time_limit * 60 if a.time_limit else None, dit_steps=a.steps,
                   ae_steps=a.ae_steps, decoder_steps=a.decoder_steps, dit_batch=a.batch, num_threads=a.threads, compile=a.compile or None,
                   bf16=False if a.no_bf16 else None, checkpoint_every=a.checkpoint_every, sample_every=a.sample_every,
                   time_budget_s=a.time_budget * 60 if a.time_budget else None)
    print(json.dumps(result))
    code = 0 if result.get("replicas_in_sync", True) else 1
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker leaves here, its results written: at interpreter teardown, after every Python frame
        # has returned, a gloo-backed worker aborts now and then ("terminate called without an active exception",
        # SIGABRT; 6 of 92 two-process runs here, 0 of 100 with this exit) and torchrun then fails the whole job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _cmd_eval(a: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    import worldsim
    from worldsim.atomic import write_json_atomic
    from worldsim.dataset import Dataset
    from worldsim.evaluate import autoencoder_psnr, evaluate
    from worldsim.report import plot_horizon, strip
    from worldsim.video import write_mp4

    model = worldsim.load(a.checkpoint).set_precision(a.precision)
    if a.key_guidance is not None:
        model.set_key_guidance(a.key_guidance)
    _prior_sampling(model, a)
    ds = Dataset(a.data)
    episodes = list(range(min(a.episodes, len(ds)))) if a.episodes else list(range(len(ds)))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    idm = None if a.no_idm else _idm_for(a, model, out)
    result = evaluate(model, ds, horizon=a.horizon, episodes=episodes, stride=a.stride, steps=a.sampling_steps,
                      progress=not a.quiet, idm=idm, pitch=not a.hide_pitch)
    examples = result.pop("_examples")
    breaks = result["break_response"].pop("_examples") if "break_response" in result else []
    result["verdict"] = verdict(result)
    result["autoencoder_psnr_db"] = round(autoencoder_psnr(model, ds, episodes), 3)
    result["checkpoint"] = str(a.checkpoint)
    result["data"] = str(a.data)
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
    m = result["metrics"]
    cols = [n for n in ("model", "action_blind", "copy_last", "camera_shift") if f"{n}_psnr" in m]
    print(f"{'h':>3} " + " ".join(f"{n:>12}" for n in cols) + f"   (PSNR dB, {result['clips']} clips)")
    for h in sorted({0, 3, 7, 15, a.horizon - 1} & set(range(a.horizon))):
        print(f"{h + 1:>3} " + " ".join(f"{m[f'{n}_psnr']['mean'][h]:12.2f}" for n in cols))
    if "idm" in result:
        r, d = result["idm"]["real"], result["idm"]["dream"]
        print(f"IDM key F1 real {r['key_f1']:.3f} / dream {d['key_f1']:.3f}; camera error real {r['camera_mae_deg']:.2f} deg"
              f" / dream {d['camera_mae_deg']:.2f} deg")
    print("\n".join(result["verdict"]))
    print(f"autoencoder PSNR {result['autoencoder_psnr_db']} dB; report in {out}")
    return 0


def _idm_for(a: argparse.Namespace, model, out: Path):
    """The inverse-dynamics model of the controllability measure: --idm if it exists, else trained on real data."""
    from worldsim.checkpoint import read_config, resolve
    from worldsim.dataset import Dataset
    from worldsim.idm import load_idm, save_idm, train_idm

    path = Path(a.idm) if a.idm else out / "idm"
    if (path / "idm.json").exists():
        return load_idm(path)
    data = a.idm_data or read_config(resolve(a.checkpoint)).get("dataset", {}).get("path")
    if not data or not Path(data).exists():
        raise ValueError(f"the IDM needs real training episodes: pass --idm-data (the checkpoint names {data!r})")
    ds = Dataset(data)
    idm = train_idm(ds, list(range(len(ds))), model.codec, steps=a.idm_steps, progress=not a.quiet)
    save_idm(idm, path, {"data": str(data), "steps": a.idm_steps})
    return idm


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
    if "break_response" in result:
        br = result["break_response"]
        lines.append(f"breaking: on {br['events']} steps that broke a block, the dream with attack pressed is closer to the real "
                     f"frame at the crosshair than with it released in {100 * br['share_closer_when_pressed']:.0f}% of them "
                     f"({br['gain_db']:+.2f} dB there).")
    return lines


def _cmd_agent_train(a: argparse.Namespace) -> int:
    from agents.discrete import DiscreteActionSpec
    from agents.ppo import train_ppo

    info = train_ppo(a.out, env_id=a.env, task=a.task, steps=a.steps, num_envs=a.num_envs, seed=a.seed,
                     n_steps=a.n_steps, batch_size=a.batch_size, learning_rate=a.lr, progress=not a.quiet,
                     spec=DiscreteActionSpec(clicks=tuple(a.click)), resume=a.resume,
                     checkpoint_every=a.checkpoint_every, episode_steps=a.episode_steps, **_neural_kwargs(a))
    print(json.dumps(info))
    return 0


def _cmd_agent_eval(a: argparse.Namespace) -> int:
    from agents.evaluate import evaluate_policy
    from worldsim.atomic import write_json_atomic

    results = [evaluate_policy(a.env, pol, episodes=a.episodes, seed=a.seed, task=a.task, progress=not a.quiet,
                               deterministic=a.deterministic, **_neural_kwargs(a)) for pol in a.policy]
    print(f"{a.env} task={a.task} episodes={a.episodes} seeds {a.seed}..{a.seed + a.episodes - 1}")
    for r in results:
        print(f"  {r['policy']:<30} return {r['mean_return']:7.2f}  95% CI [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
              f"  ({r['steps_per_s']} steps/s)")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(a.out, results)
    return 0


def _cmd_install_game(a) -> int:
    from envs.indev.runtime import GAME_NUMPY, install_game_site

    site = install_game_site(quiet=a.quiet)
    print(f"the Indev game's process will use {GAME_NUMPY} from {site}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from worldsim.config import PRESETS

    p = argparse.ArgumentParser(prog="worldsim", description="A neural Minecraft: collect, train, play, evaluate.")
    sub = p.add_subparsers(dest="command", required=True)

    ig = sub.add_parser("install-game", help="once after pip install: the NumPy 1 the Indev game's process runs on")
    ig.add_argument("--quiet", action="store_true")
    ig.set_defaults(func=_cmd_install_game)

    c = sub.add_parser("collect", help="record rollouts of a policy into a dataset")
    c.add_argument("--env", default="worldsim/MinecraftIndev-v0")
    c.add_argument("--policy", default="explore", help="explore, random, or module:factory")
    c.add_argument("--episodes", type=int, default=10)
    c.add_argument("--steps", type=int, default=1000, help="steps per episode")
    c.add_argument("--out", required=True, help="dataset folder (resumes if it exists)")
    c.add_argument("--workers", type=int, default=1, help="games played at once (processes, or Ray actors)")
    c.add_argument("--ray", metavar="ADDRESS", help="play on a Ray cluster (\"auto\", \"ray://host:10001\") or "
                   "\"local\" (a Ray instance here); episodes come back and are written here (pip install 'worldsim[ray]')")
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    c.add_argument("--video", action="store_true", help="also write an mp4 per episode")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_collect)

    ex = sub.add_parser("export", help="a self-contained inference checkpoint (EMA weights, config, opening clips)")
    ex.add_argument("--checkpoint", required=True, help="checkpoint or run folder")
    ex.add_argument("--out", required=True)
    ex.add_argument("--data", help="dataset to cut the bank of real opening clips from")
    ex.add_argument("--openings", type=int, default=32)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size)")
    ex.add_argument("--sampling-steps", type=int, help="default network evaluations per frame of the exported model")
    ex.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    ex.add_argument("--pixel-prior", choices=["on", "off"], help=PIXEL_PRIOR_HELP)
    ex.add_argument("--prior-start", type=float, help=PRIOR_START_HELP)
    ex.add_argument("--prior-fill", choices=["mean", "edge", "view"], help="what the motion prior puts in the strip a "
                    "camera move reveals (default: as the model was trained; view: the view atlas measured on --data)")
    ex.set_defaults(func=_cmd_export)

    pl = sub.add_parser("play", help="play the neural Minecraft in a window (or --real, or --side-by-side)")
    pl.add_argument("--checkpoint", help="world-model checkpoint (default: the shipped one)")
    g = pl.add_mutually_exclusive_group()
    g.add_argument("--real", action="store_true", help="play the real game (Indev)")
    g.add_argument("--side-by-side", action="store_true", help="real game left, dream right, same inputs")
    pl.add_argument("--image", help="start the dream from this picture")
    pl.add_argument("--scale", type=int, default=8)
    pl.add_argument("--fps", type=int, default=20)
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--sampling-steps", type=int)
    pl.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    pl.add_argument("--out-dir", default="worldsim_captures", help="where F12 screenshots and F9 recordings go")
    pl.set_defaults(func=_cmd_play)

    r = sub.add_parser("rollout", help="record rollouts of an agent in the neural env (or any env) as a dataset")
    r.add_argument("--env", default="worldsim/NeuralMinecraft-v0")
    r.add_argument("--checkpoint", help="world-model checkpoint for the neural env (default: the shipped one)")
    r.add_argument("--sampling-steps", type=int)
    r.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    r.add_argument("--agent", default="explore", help="explore, random, or module:factory")
    r.add_argument("--episodes", type=int, default=1)
    r.add_argument("--steps", type=int, default=200)
    r.add_argument("--out", required=True)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--video", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_rollout)

    for kind, help_ in (("vpt", "import OpenAI VPT contractor data (NAME.mp4 + NAME.jsonl)"),
                        ("minerl", "import MineRL 0.4 dataset episodes (recording.mp4 + rendered.npz)")):
        i = sub.add_parser(f"import-{kind}", help=help_)
        i.add_argument("src")
        i.add_argument("--out", required=True)
        i.add_argument("--size", type=int, default=64)
        i.set_defaults(func=lambda a, kind=kind: _cmd_import(a, kind))

    t = sub.add_parser("train", help="train the autoencoder, then the dynamics model (torchrun-ready)")
    t.add_argument("--data", required=True, help="dataset folder (from `worldsim collect`)")
    t.add_argument("--preset", default="small", choices=list(PRESETS),
                   help="small: the first model; small2: the space-time model (generation 2); tiny, tiny2: tests")
    t.add_argument("--out", required=True, help="run folder: checkpoints, TensorBoard logs, dream videos")
    t.add_argument("--steps", type=int, help="dynamics-model steps (default: the preset's)")
    t.add_argument("--ae-steps", type=int, help="autoencoder steps (default: the preset's)")
    t.add_argument("--decoder-steps", type=int, help="decoder fine-tuning steps on the frozen latents, run last "
                   "(default: the preset's); with --resume on a finished run, trains just the decoder")
    t.add_argument("--batch", type=int, help="dynamics batch size per process")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--sample-every", type=int)
    t.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    t.add_argument("--init", help="a fresh run starts from this checkpoint or run: its autoencoder (and latent "
                   "cache), heads and dynamics weights; trains the dynamics model from there")
    t.add_argument("--time-limit", type=float, help="minutes: checkpoint and stop after this long (resume later)")
    t.add_argument("--time-budget", type=float, help="minutes the whole run may take: the dynamics schedule is fitted "
                   "to end then, whatever the machine's speed (resumed invocations count)")
    t.add_argument("--compile", action="store_true", help="torch.compile the dynamics model")
    t.add_argument("--no-bf16", action="store_true", help="train in fp32 even where bf16 autocast works")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="open-loop dreams vs held-out real episodes (PSNR/SSIM over horizon)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True, help="held-out real dataset (seeds never used in training)")
    e.add_argument("--horizon", type=int, default=16)
    e.add_argument("--episodes", type=int, default=0, help="use the first N episodes (0: all)")
    e.add_argument("--stride", type=int, default=100, help="frames between clip starts within an episode")
    e.add_argument("--sampling-steps", type=int, help="network evaluations per frame (default: the checkpoint's)")
    e.add_argument("--out", required=True)
    e.add_argument("--idm", help="inverse-dynamics model folder: used if it exists, else trained and saved there "
                                 "(default OUT/idm)")
    e.add_argument("--idm-data", help="real episodes to train the IDM on (default: the checkpoint's training data)")
    e.add_argument("--idm-steps", type=int, default=2000)
    e.add_argument("--no-idm", action="store_true", help="skip the controllability measure")
    e.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    e.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    e.add_argument("--pixel-prior", choices=["on", "off"], help=PIXEL_PRIOR_HELP)
    e.add_argument("--prior-start", type=float, help=PRIOR_START_HELP)
    e.add_argument("--hide-pitch", action="store_true", help="do not tell the model the recorded view pitch "
                                                             "(measures what knowing it adds)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)

    s = sub.add_parser("stats", help="action statistics of a dataset")
    s.add_argument("data")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_stats)

    b = sub.add_parser("bench", help="measure throughput (never asserts)")
    b.add_argument("what", choices=["collect", "neural", "stability", "hold", "all"], nargs="?", default="all",
                   help="hold: does the dream hold the world (standing still, turning away and back, long play, random keys)")
    b.add_argument("--checkpoint", help="world-model checkpoint for `bench neural` (default: the shipped one)")
    b.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    b.add_argument("--sampling-steps", type=int, nargs="+", help="default: 1 and 3 (neural), the checkpoint's (hold)")
    b.add_argument("--seeds", type=int, default=4, help="hold: real starts (reset seeds 0..N-1)")
    b.add_argument("--still-steps", type=int, default=100, help="hold: steps standing still")
    b.add_argument("--play-steps", type=int, default=2000, help="hold: steps of human-like play")
    b.add_argument("--random-steps", type=int, default=1000, help="hold: steps of uniform random actions")
    b.add_argument("--real-cache", help="hold: an .npz of the real game's runs, written the first time and read after, "
                   "so several models meet the same real frames")
    b.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    b.add_argument("--steps", type=int, default=500, help="steps per episode (collect) or dream length (stability)")
    b.add_argument("--no-real", action="store_true", help="stability: skip playing the real game with the same actions")
    b.add_argument("--dreams", type=int, default=1, help="stability: N > 1 runs N dreams at once (from the openings) and "
                   "reports the share of frames that lost the picture per window, instead of one dream against the game")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--episodes", type=int, default=4)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--size", type=int, default=64)
    b.add_argument("--out", help="also write the results as JSON here")
    b.set_defaults(func=_cmd_bench)

    ag = sub.add_parser("agent", help="RL agents: train PPO in the dream, score policies in any env")
    agsub = ag.add_subparsers(dest="agent_command", required=True)
    at = agsub.add_parser("train", help="PPO (Stable-Baselines3) on the vector env of --env under --task")
    at.add_argument("--env", default="worldsim/NeuralMinecraft-v0")
    at.add_argument("--task", default="dig")
    at.add_argument("--steps", type=int, default=100_000, help="env steps")
    at.add_argument("--out", required=True, help="policy folder (policy.safetensors + policy.json)")
    at.add_argument("--num-envs", type=int, default=16)
    at.add_argument("--n-steps", type=int, default=64, help="PPO rollout length per env")
    at.add_argument("--batch-size", type=int, default=256)
    at.add_argument("--lr", type=float, default=3e-4)
    at.add_argument("--click", nargs="*", default=[], metavar="KEY",
                    help="keys the policy clicks instead of holding (e.g. attack use)")
    at.add_argument("--seed", type=int, default=0)
    at.add_argument("--resume", action="store_true", help="carry on the unfinished run in --out from its checkpoint")
    at.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints (0: none)")
    at.add_argument("--episode-steps", type=int, help="episodes of this many steps instead of the task's (dreams drift "
                    "as they go: shorter ones restart from real openings more often)")
    at.add_argument("--checkpoint", help="world model (default: the shipped one)")
    at.add_argument("--sampling-steps", type=int)
    at.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    at.add_argument("--quiet", action="store_true")
    at.set_defaults(func=_cmd_agent_train)
    ae = agsub.add_parser("eval", help="mean return and 95%% interval of policies over fixed seeds")
    ae.add_argument("--env", default="worldsim/MinecraftIndev-Dig-v0")
    ae.add_argument("--task", default="dig")
    ae.add_argument("--policy", nargs="+", required=True, help="random, explore, a policy folder, or module:factory")
    ae.add_argument("--episodes", type=int, default=20)
    ae.add_argument("--seed", type=int, default=0)
    ae.add_argument("--checkpoint", help="world model, for the neural env")
    ae.add_argument("--sampling-steps", type=int)
    ae.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)
    ae.add_argument("--deterministic", action="store_true", help="trained policies take their most likely action")
    ae.add_argument("--out", help="write the results as JSON here")
    ae.add_argument("--quiet", action="store_true")
    ae.set_defaults(func=_cmd_agent_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"worldsim {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
