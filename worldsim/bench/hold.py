"""`worldsim bench hold`: does the dream hold its world under what users do first?

Every scenario starts the real game and the dream from the same real frames (`worldsim.envs.neural.start_from_env`: a
reset, then standing still while the freshly loaded world settles, `settle` steps) and drives both with the very same
actions; the real game's own continuation is the reference. Scenarios:

- ``still``: every key released, camera still, for `still_steps` steps (the first steps of ``stand``'s run).
  Floor: the last start frame copied.
- ``turn90`` / ``turn180``: turn right at 10 degrees a step, then back the same way; ``look``: look down 60
  degrees and back up. At the end the view is the start's again, so copying the start frame is the floor the
  dream should come within a couple of dB of. At the step where the real view is furthest from the start, the
  dream's PSNR against the start view says whether it turned away at all (a frozen dream scores high there
  where the real game scores low). Each also reports the real frames through the model's own
  autoencoder: the closest any dream in that latent space can come (a still view renders identically, so
  copy-last is exact there and only a lossless autoencoder could match it).
- ``play``: the human-like explorer for `play_steps` steps; per window, the colour-histogram overlap of the dream
  with the game and its contrast (mean frame std) relative to the game's. Two different real episodes (other
  seeds, same policy) give the reference range.
- ``random``: uniform random actions (as ``action_space.sample()`` draws them) for `random_steps` steps: the same
  statistics, and whether the picture collapses (frame std).
- ``stand``, ``walk`` and ``spin``: every key released, walking forward (jumping now and then), or turning in place
  (5 degrees of yaw a step, a full turn every 72 steps), for `long_steps` steps.

Where it goes dark or washes out: for ``stand``, ``walk``, ``spin`` and ``random``, the dream's brightness (mean grey level) and
contrast (spatial standard deviation) as a share of the real game's under the same actions, after 100 steps and
at the end (`levels`), per start: a dream a person recognises keeps both within 0.8-1.25 of the game's.

A game over in the real game (falling off the world) ends that start's comparison there. Dreams of all starts run
as one batch. Results: JSON, a PNG of the curves and `hold_frames.png`: per scenario (in the order above) a row
of the real game and a row of the dream at 8 steps spread over it, from the first start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsim.envs.actions import restrict_action

TURN_STEP = 10.0
SPIN_STEP = 5.0  # degrees of yaw a step of `spin`: the view sweeps its neighbours' ground before a full turn


def scripts(codec, long_steps: int = 1000) -> dict[str, list[dict]]:
    """The scripted scenarios as lists of action dicts."""
    def cam(pitch: float, yaw: float) -> dict:
        a = codec.noop()
        a["camera"] = np.array([pitch, yaw], np.float32)
        return a

    n90, n180, n60 = int(90 / TURN_STEP), int(180 / TURN_STEP), int(60 / TURN_STEP)
    def walk(t: int) -> dict:
        a = codec.noop()
        a["forward"] = 1
        a["jump"] = int(t % 40 >= 36)  # a hop now and then: walking on uneven ground
        return a

    return {"walk": [walk(t) for t in range(long_steps)],
            "spin": [cam(0, SPIN_STEP)] * long_steps,
            "turn90": [cam(0, TURN_STEP)] * n90 + [cam(0, -TURN_STEP)] * n90,
            "turn180": [cam(0, TURN_STEP)] * n180 + [cam(0, -TURN_STEP)] * n180,
            "look": [cam(TURN_STEP, 0)] * n60 + [cam(-TURN_STEP, 0)] * n60}


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR (dB) of uint8 frames (..., H, W, 3)."""
    mse = ((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean(axis=(-3, -2, -1))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-6))  # identical frames: 60 dB


def colour_hist(frames: np.ndarray, bins: int = 8) -> np.ndarray:
    """Normalised joint RGB histogram (bins^3) of a stack of uint8 frames."""
    q = (frames.reshape(-1, 3).astype(np.int64) * bins) // 256
    h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins**3).astype(np.float64)
    return h / max(h.sum(), 1.0)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Histogram intersection of two frame stacks' colours: 1 = the same colours in the same amounts."""
    return float(np.minimum(colour_hist(a), colour_hist(b)).sum())


def levels(dream: np.ndarray, truth: np.ndarray, lengths: list[int], at: int, span: int = 10) -> dict[str, Any]:
    """Brightness (mean grey) and contrast (spatial std of grey) of the dream as a share of the real game's, over
    the `span` steps ending at step `at`, per start (starts whose real game ended earlier are left out)."""
    def grey(x):
        return x.astype(np.float32).mean(-1)

    rows = []
    for i, n in enumerate(lengths):
        if n < at:
            continue
        d, t = grey(dream[i, at - span:at]), grey(truth[i, at - span:at])
        rows.append((d.mean() / max(t.mean(), 1e-6), d.reshape(len(d), -1).std(1).mean() / max(t.reshape(len(t), -1).std(1).mean(), 1e-6)))
    if not rows:
        return {"step": at, "starts": 0}
    b, c = np.array(rows).T
    return {"step": at, "starts": len(rows), "brightness": b.round(3).tolist(), "contrast": c.round(3).tolist(),
            "brightness_median": round(float(np.median(b)), 3), "contrast_median": round(float(np.median(c)), 3),
            "within_0.8_1.25": bool(((b >= 0.8) & (b <= 1.25) & (c >= 0.8) & (c <= 1.25)).all())}


LEVEL_SCENARIOS = ("stand", "walk", "spin", "random")


def moved(ctx: np.ndarray, dream: np.ndarray, truth: np.ndarray, lengths: list[int],
          at: tuple[int, ...] = (3, 10, 30)) -> dict[str, Any]:
    """Does the dream walk when told to? At each step of `at` (1-based), the median PSNR of the dream's and the real
    game's frame against the last start frame: a player who walks leaves the start's picture (the real game: ~17 dB
    after 3 steps, view bobbing and the way ahead), a dream that stands keeps it (30+ dB)."""
    out: dict[str, Any] = {"steps": [a for a in at if a <= min(lengths)]}
    for name, frames in (("dream", dream), ("real", truth)):
        out[f"{name}_db"] = [round(float(np.median(psnr(frames[:, a - 1], ctx[:, -1]))), 2) for a in out["steps"]]
    return out


def contrast(frames: np.ndarray) -> float:
    """Mean spatial standard deviation of the frames' grey levels (~0: a flat picture)."""
    return float(frames.astype(np.float32).mean(axis=-1).reshape(len(frames), -1).std(axis=1).mean())


def _start(env, seed: int, k: int, space, settle: int):
    from worldsim.envs.neural import start_from_env

    _, options = start_from_env(env, seed, k, space, settle)
    return options["frames"], options["actions"], float(options.get("pitch", np.nan))


def _play(env, actions: list[dict]) -> tuple[np.ndarray, int]:
    """The real game's frames under `actions`, and how many steps it ran before a game over."""
    frames = []
    for a in actions:
        obs, _, term, trunc, _ = env.step(a)
        frames.append(obs)
        if term or trunc:
            break
    n = len(frames)
    return np.stack(frames + [frames[-1]] * (len(actions) - n)), n


def _policy_actions(env, policy_name: str, seed: int, steps: int) -> list[dict]:
    """A policy's actions for `steps` steps, decided before playing: the explore and random policies never read
    the screen, so the game and the dream get the very same ones."""
    from worldsim.agents import make_policy

    if policy_name == "random":  # uniform over the whole action space, as action_space.sample() draws
        space = env.action_space
        space.seed(seed)
        return [space.sample() for _ in range(steps)]
    pol = make_policy(policy_name, env.action_space, seed=seed)
    pol.reset(seed=seed)
    return [pol.act(None, {}) for _ in range(steps)]


def _windows(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size) if min(i + size, n) - i >= size // 2]


def hold_bench(checkpoint: str | None = None, seeds: int = 4, still_steps: int = 100, play_steps: int = 2000,
               random_steps: int = 1000, window: int = 250, sampling_steps: int | None = None, seed0: int = 0,
               out: str | None = None, progress: bool = True, real_cache: str | None = None,
               long_steps: int = 1000, settle: int | None = None) -> dict[str, Any]:
    """Run every scenario from `seeds` real starts; returns the report (and writes JSON + PNG under `out`).
    `real_cache`: an .npz of the real game's runs for these settings, read when it exists and written when not,
    so several models are held against the same real frames without playing the game again (a scenario it lacks is
    played and added). `settle`: steps the real game stands still after each reset before the start frames
    (default `worldsim.envs.neural.SETTLE`)."""
    import gymnasium as gym
    from tqdm import tqdm

    import worldsim
    import worldsim.envs  # noqa: F401
    from worldsim.envs.neural import SETTLE
    from worldsim.sampling.sampler import Sampler

    settle = SETTLE if settle is None else settle

    model = worldsim.load(checkpoint, "auto", "auto")
    path = model.checkpoint_dir
    codec = model.codec
    k = model.start_frames
    real = gym.make("worldsim/MinecraftIndev-v0", size=model.cfg.frame_hw[0])
    starts = [seed0 + i for i in range(seeds)]
    # standing still: one run of every key released; `still` scores its first still_steps, `stand` its levels
    plans: dict[str, list[list[dict]]] = {"stand": [[codec.noop()] * max(still_steps, long_steps)] * seeds}
    plans.update({name: [acts] * seeds for name, acts in scripts(codec, long_steps).items()})
    plans["play"] = [_policy_actions(real, "explore", s, play_steps) for s in starts]
    plans["random"] = [_policy_actions(real, "random", s, random_steps) for s in starts]
    report: dict[str, Any] = {"checkpoint": str(path), "seeds": starts,
                              "start_frames": k, "sampling_steps": sampling_steps or model.cfg.sampler.steps, "settle": settle}
    curves: dict[str, dict[str, np.ndarray]] = {}
    pictures: list[np.ndarray] = []  # per scenario a row of real frames and a row of dreamed ones
    tag = f"{model.cfg.frame_hw}_{k}_{starts}_{still_steps}_{play_steps}_{random_steps}_{long_steps}_settle{settle}"
    stored = dict(np.load(real_cache)) if real_cache and Path(real_cache).exists() else {}
    if stored and str(stored.get("tag")) != tag:
        raise ValueError(f"{real_cache} holds real runs for other settings ({stored.get('tag')}); give another file")
    added = False
    for name, per_seed in plans.items():
        if f"{name}_truth" in stored:
            ctx, ctx_actions = stored[f"{name}_ctx"], stored[f"{name}_ctx_actions"]
            truth, lengths = stored[f"{name}_truth"], stored[f"{name}_lengths"].tolist()
            pitch = stored.get(f"{name}_pitch", np.full(len(ctx), np.nan, np.float32))  # (files before it: unknown)
        else:
            ctx, ctx_actions, truth, lengths, pitch = [], [], [], [], []
            for s, acts in zip(starts, per_seed):
                f, a, p = _start(real, s, k, codec.space, settle)
                pitch.append(p)
                frames, n = _play(real, acts)
                ctx.append(f)
                ctx_actions.append(np.stack([codec.encode(x) for x in a]) if k > 1 else np.zeros((0, codec.dim), np.float32))
                truth.append(frames)
                lengths.append(n)
            ctx, ctx_actions, truth = np.stack(ctx), np.stack(ctx_actions), np.stack(truth)
            pitch = np.array(pitch, np.float32)
            stored.update({f"{name}_ctx": ctx, f"{name}_ctx_actions": ctx_actions, f"{name}_truth": truth,
                           f"{name}_lengths": np.array(lengths), f"{name}_pitch": pitch})
            added = True
        flat = np.stack([np.stack([codec.encode(codec.validate(restrict_action(x, codec.space))) for x in acts])
                         for acts in per_seed])
        d = Sampler(model, ctx, ctx_actions, steps=sampling_steps, seeds=[seed0 + i for i in range(len(ctx))],
                    pitch=pitch)
        dream = np.stack([d.step(flat[:, t]).frames for t in tqdm(range(flat.shape[1]), desc=f"hold {name}",
                                                             disable=not progress)], axis=1)
        views = {"still": still_steps, "stand": long_steps} if name == "stand" else {name: flat.shape[1]}
        for view, n in views.items():
            t, dr, lens = truth[:, :n], dream[:, :n], [min(x, n) for x in lengths]
            if view in ("stand", "walk", "spin"):
                report[view] = {"steps": int(max(lens))}
            else:
                ceiling = _round_trip(model, t) if view in PSNR_SCENARIOS else None
                report[view], curves[view] = _score(view, ctx, t, dr, lens, window, ceiling)
            if view in LEVEL_SCENARIOS:
                report[view]["levels"] = [levels(dr, t, lens, at) for at in sorted({min(100, n), n})]
            if view == "walk":
                report[view]["moved"] = moved(ctx, dr, t, lens)
            pick = np.linspace(0, min(lens) - 1, 8).round().astype(int)  # what the first start looked like
            pictures += [t[0, pick], dr[0, pick]]
    if real_cache and added:
        Path(real_cache).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(real_cache).with_name(f".{Path(real_cache).name}.tmp.npz")
        np.savez_compressed(tmp, **{**stored, "tag": np.array(tag)})
        tmp.replace(real_cache)
    if out:
        from worldsim.io.atomic import write_json_atomic

        Path(out).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(out) / "hold.json", report)
        plot(report, curves, Path(out) / "hold.png")
        from PIL import Image

        from worldsim.evaluation.report import strip

        Image.fromarray(strip(pictures, scale=2)).save(Path(out) / "hold_frames.png")
    real.close()
    return report


PSNR_SCENARIOS = ("still", "turn90", "turn180", "look")


@torch.no_grad()
def _round_trip(model, frames: np.ndarray) -> np.ndarray:
    """Real frames (S, T, H, W, 3) through the model's autoencoder: the best any dream in its latent space shows."""
    flat = torch.from_numpy(frames.reshape(-1, *frames.shape[2:]))
    out = np.concatenate([model.decode(model.encode(flat[i:i + 64])).cpu().numpy() for i in range(0, len(flat), 64)])
    return out.reshape(frames.shape)


def _score(name: str, ctx: np.ndarray, truth: np.ndarray, dream: np.ndarray, lengths: list[int], window: int,
           ceiling: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """`ceiling`: the real frames through the autoencoder (PSNR scenarios): a dream can come no closer than that."""
    n = min(lengths)
    if name in PSNR_SCENARIOS:
        model = psnr(dream[:, :n], truth[:, :n]).mean(0)
        floor_frame = ctx[:, -1:]  # the last real start frame: copy-last for standing still, the start view after turning back
        floor = psnr(np.broadcast_to(floor_frame, truth[:, :n].shape), truth[:, :n]).mean(0)
        key = "copy_last" if name == "still" else "copy_start"
        tail = slice(max(0, n - 10), n) if name == "still" else slice(n - 1, n)
        out = {"steps": n, "model_db": round(float(model[tail].mean()), 2), f"{key}_db": round(float(floor[tail].mean()), 2)}
        if name != "still":  # did the dream turn away at all? At the step where the real view is furthest from the
            far = int(np.argmin(floor))  # start, a dream that never turned still looks like the start view
            out.update({"away_step": far, "model_db_away": round(float(model[far]), 2),
                        "dream_vs_start_away_db": round(float(psnr(dream[:, far], ctx[:, -1]).mean()), 2),
                        "real_vs_start_away_db": round(float(floor[far]), 2)})
        curves = {"model": model, key: floor}
        if ceiling is not None:
            ae = psnr(ceiling[:, :n], truth[:, :n]).mean(0)
            out["autoencoder_db"] = round(float(ae[tail].mean()), 2)
            curves["autoencoder"] = ae
        out.update({f"{k}_db_curve": v.round(2).tolist() for k, v in curves.items()})
        return out, curves
    rows = []
    for i, ln in enumerate(lengths):
        other = (i + 1) % len(lengths)
        m = min(ln, lengths[other])
        for w in _windows(m, window):
            rows.append((i, w.start, overlap(dream[i, w], truth[i, w]), overlap(truth[other, w], truth[i, w]),
                         contrast(dream[i, w]) / max(contrast(truth[i, w]), 1e-6),
                         contrast(truth[other, w]) / max(contrast(truth[i, w]), 1e-6), contrast(dream[i, w])))
    a = np.array(rows, np.float64)
    starts = sorted(set(a[:, 1].astype(int)))
    per = {k: np.array([a[a[:, 1] == s, j].mean() for s in starts]) for k, j in
           (("overlap", 2), ("real_overlap", 3), ("contrast", 4), ("real_contrast", 5), ("std", 6))}
    summary = {"steps": int(max(lengths)), "windows": len(starts), "window": window,
               "colour_overlap_min": round(float(a[:, 2].min()), 3), "colour_overlap_mean": round(float(a[:, 2].mean()), 3),
               "real_overlap_min": round(float(a[:, 3].min()), 3), "real_overlap_mean": round(float(a[:, 3].mean()), 3),
               "contrast_min": round(float(a[:, 4].min()), 3), "contrast_mean": round(float(a[:, 4].mean()), 3),
               "real_contrast_range": [round(float(a[:, 5].min()), 3), round(float(a[:, 5].max()), 3)],
               "dream_std_min": round(float(a[:, 6].min()), 2),
               "per_window": {k: v.round(3).tolist() for k, v in per.items()}}
    return summary, {**per, "x": np.array(starts)}


def plot(report: dict, curves: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    for ax, name in zip(axes[0], ("still", "turn180", "look")):
        for key, c in curves[name].items():
            ax.plot(c, label=key.replace("_", " "))
        ax.set_title(f"{name}: PSNR against the real game")
        ax.set_xlabel("step")
        ax.set_ylabel("dB")
        ax.legend()
    for ax, name in zip(axes[1], ("turn90", "play", "random")):
        c = curves[name]
        if "x" not in c:
            for key, v in c.items():
                ax.plot(v, label=key.replace("_", " "))
            ax.set_title(f"{name}: PSNR against the real game")
        else:
            for key in ("overlap", "real_overlap", "contrast", "real_contrast"):
                ax.plot(c["x"], c[key], marker="o", label=key.replace("_", " "))
            ax.set_title(f"{name}: colour overlap, contrast per window")
            ax.set_ylim(0, 1.6)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.suptitle(f"worldsim bench hold — {report['checkpoint']}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
    return path
