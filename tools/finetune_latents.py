"""Fine-tune a checkpoint's dynamics model on a latent cache alone, for a fixed time budget, on any device.

Why this exists next to `worldsim train`: a lent accelerator comes for minutes, on a machine that cannot render
the classic game and cannot receive the frames (1.4 GB for 112k frames) but can receive their latents. The
dynamics phase needs nothing else: the autoencoder is frozen, so the cache `worldsim train` builds
(`runs/NAME/latents`) holds every input. Everything the loss does is `WorldModel.dynamics_loss`, the same call
the trainer makes; this script only keeps the whole cache on the device and sizes the run by the clock (`tools/pack_latents.py` carries a cache there in
parts that fit a transfer limit):

    python tools/finetune_latents.py cache --checkpoint worldsim/assets/default --data datasets/classic64 \
        --out runs/ft/latents      # only where the run's cache is gone or its autoencoder changed since
    python tools/finetune_latents.py train --checkpoint worldsim/assets/default --latents runs/small_sl/latents \
        --out runs/gpu_ft --minutes 7 --batch 512
    python tools/finetune_latents.py merge --checkpoint worldsim/assets/default --dit runs/gpu_ft/dit_100_*.safetensors \
        --out runs/gpu_ft/merged

`--view-pitch` adds the view's pitch to a model trained without it (its input weights start at zero, so training
starts from exactly the base model; the cache needs `pitch.f32`, which `worldsim train` writes), and `merge` then
gives the merged checkpoint that input too.

`train` measures its own speed over the warm-up, then fixes the number of steps that fit the budget, so the
cosine learning-rate schedule ends where the clock does. It writes EMA snapshots of the dynamics weights (fp16,
split into files under 16 MiB) at the fractions asked for, and the validation loss of each on the held-out
episodes' windows (same windows, same noise for every snapshot, so the figures compare).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout too (no `pip install`)

import worldsim  # noqa: E402
from worldsim.atomic import write_json_atomic  # noqa: E402
from worldsim.checkpoint import read_config, resolve, save_derived  # noqa: E402
from worldsim.config import ModelConfig, TrainConfig  # noqa: E402
from worldsim.data import LatentCache  # noqa: E402
from worldsim.train import _lr  # noqa: E402  (the trainer's schedule: warm-up, cosine to a tenth of the peak)
from worldsim.world_model import WorldModel, load_extending  # noqa: E402

PART_BYTES = 15 * 2**20


def save_parts(state: dict[str, torch.Tensor], stem: Path) -> list[Path]:
    """fp16 safetensors files of at most PART_BYTES each: `stem_a.safetensors`, `stem_b…`."""
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(state):
        v = state[k].detach().to("cpu", torch.float16 if state[k].is_floating_point() else state[k].dtype).contiguous()
        nbytes = v.numel() * v.element_size()
        if parts[-1] and size + nbytes > PART_BYTES:
            parts.append({})
            size = 0
        parts[-1][k] = v
        size += nbytes
    out = []
    for i, p in enumerate(parts):
        path = stem.with_name(f"{stem.name}_{chr(ord('a') + i)}.safetensors")
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(p, str(tmp))
        tmp.replace(path)
        out.append(path)
    return out


class DeviceCache:
    """The whole latent cache on the device (one copy), read as windows of `frames` consecutive frames from their
    start indices (`LatentCache.windows`: none crosses an episode boundary); with `moved`, also the cache's
    pixel-moved latents (`LatentCache.write_pixel_prior`)."""

    def __init__(self, cache: LatentCache, frames: int, device: torch.device, moved: bool = False):
        self.latents = torch.from_numpy(np.array(cache.latents)).to(device)  # fp16, (N, C, h, w)
        self.actions = torch.from_numpy(np.array(cache.actions)).to(device)
        self.known = torch.from_numpy(np.array(cache.known)).to(device).float()
        self.pitch = torch.from_numpy(np.array(cache.pitch, np.float32)).to(device)
        if moved and cache.moved is None:
            raise ValueError(f"{cache.root} has no moved.f16, which a model sampling with the pixel prior trains on: "
                             "build it with LatentCache.write_pixel_prior (worldsim train does)")
        self.moved = torch.from_numpy(np.array(cache.moved)).to(device) if moved else None
        self.offs = torch.arange(frames, device=device)

    def batch(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Latents, actions, known flags and pitch of each window, and its last frame's pixel-moved latents (None
        unless asked for)."""
        idx = starts[:, None] + self.offs[None]
        moved = None if self.moved is None else self.moved[idx[:, -1]].float()
        return self.latents[idx].float(), self.actions[idx], self.known[idx], self.pitch[idx], moved


def load_model(src: Path, view_pitch: bool, device: torch.device | str = "cpu") -> WorldModel:
    """The checkpoint's model; with `view_pitch`, grown to also take the view's pitch (new weights zero)."""
    model = worldsim.load(src, device=device)
    if not view_pitch or model.cfg.view_pitch:
        return model
    cfg = ModelConfig.from_dict({**model.cfg.to_dict(), "view_pitch": True})
    grown = WorldModel(cfg).to(device)
    load_extending(grown, model.state_dict())
    return grown


def train(a: argparse.Namespace) -> int:
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t_start = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    src = resolve(a.checkpoint)
    meta = read_config(src)
    tc = TrainConfig.from_dict(meta.get("train", {}))
    model = load_model(src, a.view_pitch, device)
    model.train()
    model.ae.requires_grad_(False)
    model.heads.requires_grad_(False)
    cache = LatentCache(a.latents)
    if model.cfg.view_pitch and not np.isfinite(cache.pitch).any():
        raise ValueError(f"{cache.root} holds no pitch (pitch.f32 missing or all unknown): a model with view_pitch "
                         "needs it; `worldsim train` writes it, or LatentCache.write_pitch(cache, dataset)")
    n_eps = len(cache.offsets) - 1
    val_eps = list(range(n_eps - a.val_episodes, n_eps))
    k1 = model.context + 1
    starts = cache.windows(k1)
    held_out = starts >= cache.offsets[val_eps[0]]  # the last episodes of the cache, as the trainer holds them out
    if held_out.all() or not held_out.any():
        raise ValueError(f"--val-episodes {a.val_episodes} leaves no training or no held-out windows in {cache.root}")
    pixel = model.trains_on_pixel_prior
    data = DeviceCache(cache, k1, device, moved=pixel)
    train_starts, val_all = (torch.from_numpy(x).to(device) for x in (starts[~held_out], starts[held_out]))
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)
    val_gen = torch.Generator(device=device)
    val_gen.manual_seed(12345)
    val_starts = val_all[torch.randint(len(val_all), (a.val_windows,), generator=val_gen, device=device)]
    bf16 = (device.type == "cuda" and torch.cuda.is_bf16_supported()) or (device.type == "cpu" and a.bf16_cpu)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    @torch.no_grad()
    def val_loss(dit: torch.nn.Module) -> float:
        g = torch.Generator(device=device)
        g.manual_seed(777)
        total, n = 0.0, 0
        for i in range(0, len(val_starts), a.batch):
            z, act, known, pitch, moved = data.batch(val_starts[i:i + a.batch])
            with autocast():
                loss = model.dynamics_loss(z, act, known, tc.ctx_aug_prob, tc.ctx_aug_max, g, net=dit,
                                           sampler_level_prob=tc.sampler_level_prob, pitch=pitch, moved=moved)
            total += loss.item() * len(z)
            n += len(z)
        return total / n

    ema = copy.deepcopy(model.dit).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.dit.parameters(), lr=a.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.99),
                            fused=device.type == "cuda")
    log: dict = {"checkpoint": str(src), "latents": str(a.latents), "device": str(device),
                 "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 "batch": a.batch, "lr": a.lr, "warmup": a.warmup, "ema": a.ema, "bf16": bf16, "view_pitch": model.cfg.view_pitch, "pixel_prior": pixel, "pitch_drop": a.pitch_drop,
                 "train_windows": len(train_starts), "val_episodes": val_eps, "snapshots": [], "curve": []}
    log["val_loss_start"] = val_loss(model.dit)
    print(f"[ft] {log['device_name']}: {len(train_starts)} training windows, val loss at start "
          f"{log['val_loss_start']:.4f}, setup {time.time() - t_start:.1f} s", flush=True)

    budget = a.minutes * 60 - (time.time() - t_start) - a.reserve_s
    t0 = time.time()
    total = None  # fixed once the speed is known
    step, run_loss, run_n, marks = 0, 0.0, 0, sorted(a.snapshots)
    while True:
        if total is None and step == a.calibrate_steps:
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = step / (time.time() - t0)
            total = max(step + 1, int(rate * budget))
            log["steps_per_s_calibration"] = rate
            log["total_steps"] = total
            print(f"[ft] {rate:.2f} steps/s ({rate * a.batch:.0f} windows/s): {total} steps fit {budget:.0f} s", flush=True)
        if total is not None and step >= total:
            break
        lr = _lr(step, total or 10**9, a.lr, a.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        z, act, known, pitch, moved = data.batch(train_starts[torch.randint(len(train_starts), (a.batch,), generator=gen, device=device)])
        with autocast():
            loss = model.dynamics_loss(z, act, known, tc.ctx_aug_prob, tc.ctx_aug_max, gen, sampler_level_prob=tc.sampler_level_prob,
                                       pitch=pitch, pitch_drop=a.pitch_drop, moved=moved)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.dit.parameters(), tc.grad_clip)
        opt.step()
        with torch.no_grad():
            d = min(a.ema, (1 + step) / (10 + step)) if a.ema_warmup else a.ema
            for e, p in zip(ema.parameters(), model.dit.parameters()):
                e.lerp_(p.detach(), 1 - d)
        step += 1
        run_loss += loss.detach()
        run_n += 1
        if step % a.log_every == 0:
            mean = float(run_loss) / run_n
            el = time.time() - t0
            log["curve"].append({"step": step, "loss": mean, "lr": lr, "elapsed_s": el})
            print(f"[ft] step {step}/{total or '?'} loss {mean:.4f} lr {lr:.2e} {step * a.batch / el:.0f} windows/s",
                  flush=True)
            run_loss, run_n = 0.0, 0
        if total is not None and marks and step >= marks[0] * total:
            frac = marks.pop(0)
            vl = val_loss(ema)
            files = save_parts(ema.state_dict(), out / f"dit_{round(frac * 100):03d}")
            log["snapshots"].append({"fraction": frac, "step": step, "val_loss": vl, "files": [f.name for f in files],
                                     "elapsed_s": time.time() - t0})
            print(f"[ft] snapshot {frac:.2f} at step {step}: val loss (EMA) {vl:.4f}", flush=True)
            write_json_atomic(out / "finetune_log.json", log)
    log["steps"] = step
    log["train_s"] = time.time() - t0
    log["windows_per_s"] = step * a.batch / log["train_s"]
    write_json_atomic(out / "finetune_log.json", log)
    print(f"[ft] done: {step} steps in {log['train_s']:.0f} s ({log['windows_per_s']:.0f} windows/s)", flush=True)
    return 0


def cache(a: argparse.Namespace) -> int:
    """A latent cache of a dataset made with the checkpoint's autoencoder (and, for a model that samples with the
    pixel prior, each frame's pixel-moved predecessor): what `train` reads. Needed when the autoencoder changed
    since the run's cache was built, or the run never had one."""
    from worldsim.dataset import Dataset

    model = worldsim.load(resolve(a.checkpoint), device=a.device or "cpu").eval().set_precision("fp32")
    ds = Dataset(a.data)
    LatentCache.build(a.out, ds, model, list(range(len(ds))))
    if model.trains_on_pixel_prior:
        LatentCache.write_pixel_prior(a.out, ds, model)
    print(f"latent cache of {len(ds)} episodes in {a.out}")
    return 0


def merge(a: argparse.Namespace) -> int:
    """A checkpoint: the base's autoencoder, heads and config with the fine-tuned dynamics weights."""
    src = resolve(a.checkpoint)
    model = load_model(src, a.view_pitch)
    state: dict[str, torch.Tensor] = {}
    for f in a.dit:
        try:
            state.update(load_file(f))
        except Exception as e:  # safetensors raises its own error types for a bad header or a truncated file
            raise ValueError(f"--dit {f}: not a safetensors file of weights ({e})") from None
    own = model.dit.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"--dit files do not hold this model's dynamics weights: missing {missing[:3]}, unexpected {extra[:3]}")
    model.dit.load_state_dict({k: v.float() for k, v in state.items()})
    note = None
    if a.note:
        note = {"finetune": json.loads(Path(a.note).read_text()) if Path(a.note).exists() else a.note}
    out = save_derived(src, a.out, model, extra=note)
    print(f"merged {len(state)} dynamics tensors into {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--checkpoint", required=True)
    t.add_argument("--latents", required=True, help="a latent cache folder built by `worldsim train` with this autoencoder")
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, required=True, help="wall-clock budget, setup and snapshots included")
    t.add_argument("--reserve-s", type=float, default=20.0, help="seconds of the budget kept for snapshots")
    t.add_argument("--batch", type=int, default=512)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--warmup", type=int, default=300)
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--ema-warmup", action="store_true", help="start the average from the first steps' weights")
    t.add_argument("--calibrate-steps", type=int, default=100)
    t.add_argument("--val-episodes", type=int, default=2, help="the cache's last N episodes are held out")
    t.add_argument("--val-windows", type=int, default=2048)
    t.add_argument("--snapshots", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    t.add_argument("--log-every", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device")
    t.add_argument("--bf16-cpu", action="store_true")
    t.add_argument("--view-pitch", action="store_true", help="add the view's pitch to a model trained without it")
    t.add_argument("--pitch-drop", type=float, default=TrainConfig.pitch_drop, help="share of windows trained with the pitch hidden")
    t.set_defaults(func=train)
    c = sub.add_parser("cache")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--data", required=True, help="the dataset to encode")
    c.add_argument("--out", required=True)
    c.add_argument("--device")
    c.set_defaults(func=cache)
    m = sub.add_parser("merge")
    m.add_argument("--checkpoint", required=True)
    m.add_argument("--dit", nargs="+", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--view-pitch", action="store_true", help="the snapshots were trained with --view-pitch")
    m.add_argument("--note", help="a JSON file (e.g. finetune_log.json) or text stored in the checkpoint's config")
    m.set_defaults(func=merge)
    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    raise SystemExit(main())
