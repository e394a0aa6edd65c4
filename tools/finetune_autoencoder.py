"""Continue training a checkpoint's autoencoder while its latents stay where the dynamics model expects them.

Why this exists: the shipped autoencoder is limited by training, not by its size (30 more minutes of plain joint
training lift its held-out PSNR by 0.6 dB), but plain training moves the latents (by 24 % in those 30 minutes),
and the dynamics model, trained on the old latents, then no longer fits the code it is fed. So this adds an
anchor to the reconstruction loss: `anchor * mean(((E(x) - E0(x)) / std)**2)`, with E0 the encoder the run
started from and `std` the per-channel latent scale the dynamics model standardises with. The encoder may still
improve in any direction the dynamics model cannot tell apart from noise, and the decoder learns to read the
slightly moved code. Only the autoencoder changes; the dynamics model, heads and config are kept.

    python tools/finetune_autoencoder.py --checkpoint worldsim/assets/default --data datasets/classic64 \
        --heldout datasets/classic64_heldout --minutes 50 --anchor 1.0 --out runs/ae_ft

Writes, under --out: `autoencoder.safetensors` (the EMA weights), `finetune_log.json` (steps, held-out PSNR before
and after, the latent drift in units of `std`) and `model/`, the checkpoint with the new autoencoder (fp16 when the
source was; its openings copied). The learning rate warms up, then follows a cosine that ends where the budget
(--minutes or --steps, whichever ends first) does. Frames are sampled as `worldsim train` samples them; the data's
last --val-episodes episodes are left out, as the trainer leaves them out.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout too (no `pip install`)

import worldsim  # noqa: E402
from worldsim.atomic import write_json_atomic  # noqa: E402
from worldsim.autoencoder import reconstruction_loss, to_pixels  # noqa: E402
from worldsim.checkpoint import read_config, resolve, save_derived  # noqa: E402
from worldsim.data import FrameSource  # noqa: E402
from worldsim.dataset import Dataset  # noqa: E402
from worldsim.evaluate import autoencoder_psnr  # noqa: E402
from worldsim.train import split_episodes  # noqa: E402  (the trainer's split: the last episodes held out)


def latent_drift(ae: torch.nn.Module, ref: torch.Tensor, x: torch.Tensor, std: torch.Tensor) -> float:
    """Root-mean-square of (E(x) - ref) in units of the latent std: what the dynamics model sees move."""
    with torch.no_grad():
        return float(((ae.encode(x) - ref) / std).pow(2).mean().sqrt())


def _is_half(src: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(src / "model.safetensors"), "pt") as f:
        return any(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="the dataset the model was trained on")
    p.add_argument("--heldout", help="a dataset of held-out episodes to measure PSNR and drift on (default: --data's left-out episodes)")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, help="wall-clock budget for the training steps")
    p.add_argument("--steps", type=int, help="step budget")
    p.add_argument("--anchor", type=float, default=1.0, help="weight of the latent anchor (0: plain training)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--val-episodes", type=int, default=2, help="the data's last N episodes are not trained on")
    p.add_argument("--psnr-frames", type=int, default=64, help="frames per held-out episode for the PSNR")
    p.add_argument("--log-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bfloat16 autocast)")
    a = p.parse_args(argv)
    if a.minutes is None and a.steps is None:
        p.error("give --minutes or --steps")
    if a.anchor < 0 or not math.isfinite(a.anchor):
        p.error(f"--anchor must be a finite number >= 0, got {a.anchor}")
    if a.val_episodes < 1 and not a.heldout:
        p.error("--val-episodes 0 leaves nothing to measure on: give --heldout")

    torch.manual_seed(a.seed)
    src = resolve(a.checkpoint)
    model = worldsim.load(src).float()
    ds = Dataset(a.data)
    if len(ds) <= a.val_episodes:
        raise ValueError(f"--data {a.data}: {len(ds)} episodes, none left to train on after --val-episodes {a.val_episodes}")
    train_eps, val_eps = split_episodes(len(ds), a.val_episodes)
    held = Dataset(a.heldout) if a.heldout else ds
    held_eps = list(range(len(held))) if a.heldout else val_eps
    probe = to_pixels(torch.from_numpy(np.array(held.episode(held_eps[0]).frames[:256])))
    std = model.latent_std.float()[:, None, None]
    start = copy.deepcopy(model.ae).eval().requires_grad_(False)
    with torch.no_grad():
        ref = start.encode(probe)
    psnr_before = autoencoder_psnr(model, held, held_eps, a.psnr_frames)

    ae = model.ae.train()
    ema = copy.deepcopy(ae).eval().requires_grad_(False)
    frames = FrameSource(ds, train_eps)
    rng = np.random.default_rng(a.seed)
    opt = torch.optim.AdamW(ae.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99))
    budget_s = a.minutes * 60 if a.minutes is not None else math.inf
    budget_steps = a.steps if a.steps is not None else 10**12
    history, step, t0 = [], 0, time.time()
    bar = tqdm(total=a.steps, desc="autoencoder", unit="step", dynamic_ncols=True)
    while True:
        frac = max((time.time() - t0) / budget_s, step / budget_steps)
        if frac >= 1:
            break
        for g in opt.param_groups:
            g["lr"] = a.lr * min(1.0, (step + 1) / a.warmup) * 0.5 * (1 + math.cos(math.pi * frac))
        x = to_pixels(frames.sample(a.batch, rng))
        with torch.autocast("cpu", torch.bfloat16, enabled=not a.no_bf16):
            z = ae.encode(x)
            with torch.no_grad():
                z0 = start.encode(x)
            rec, stats = reconstruction_loss(ae.decode(z), x, "ae")
            anchor = ((z.float() - z0.float()) / std).pow(2).mean()
            loss = rec + a.anchor * anchor
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pa in zip(ema.parameters(), ae.parameters()):
                pe.lerp_(pa, 1 - a.ema)
        step += 1
        bar.update(1)
        bar.set_postfix(psnr=f"{stats['ae_psnr']:.2f}", anchor=f"{anchor.item() ** 0.5:.3f}")
        if step % a.log_every == 0:
            history.append({"step": step, "s": round(time.time() - t0, 1), "train_psnr": round(stats["ae_psnr"], 3),
                            "anchor_rms": round(anchor.item() ** 0.5, 4), "ema_drift": round(latent_drift(ema, ref, probe, std), 4)})
    bar.close()
    train_s = time.time() - t0

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in ema.state_dict().items()}
    tmp = out / ".autoencoder.safetensors.tmp"
    save_file(weights, str(tmp))
    tmp.replace(out / "autoencoder.safetensors")
    model.ae.load_state_dict(weights)
    model.eval()
    log = {"checkpoint": str(src), "data": a.data, "heldout": a.heldout, "anchor": a.anchor, "lr": a.lr,
           "batch": a.batch, "ema": a.ema, "bf16": not a.no_bf16, "steps": step, "train_s": round(train_s, 1),
           "heldout_psnr_before": round(psnr_before, 3),
           "heldout_psnr_after": round(autoencoder_psnr(model, held, held_eps, a.psnr_frames), 3),
           "latent_drift": round(latent_drift(model.ae, ref, probe, std), 4), "history": history}
    earlier = read_config(src).get("autoencoder_finetune", [])  # a chain of sittings keeps every one's record
    earlier = earlier if isinstance(earlier, list) else [earlier]
    note = {"autoencoder_finetune": [*earlier, {k: v for k, v in log.items() if k != "history"}]}
    ckpt = save_derived(src, out / "model", model, extra=note, half=_is_half(src))
    write_json_atomic(out / "finetune_log.json", log)
    print(f"[ae] {step} steps in {train_s:.0f} s: held-out PSNR {log['heldout_psnr_before']} -> "
          f"{log['heldout_psnr_after']} dB, latent drift {log['latent_drift']} std -> {ckpt}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
