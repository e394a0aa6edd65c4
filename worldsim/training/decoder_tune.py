"""Decoder tuning: the autoencoder's decoder fine-tuned on the latents the dynamics model itself dreams.

Why: the decoder learnt to draw the latents of real frames, and a dream's latents are not those. Where the future
is uncertain, x-prediction lands near the mean of what could come, a latent the decoder never saw and draws as a
smudge: the trained dynamics model's dreams keep ~78 % of the real frames' pixel-to-pixel detail, and the detail
fades along a dream. Here the decoder sees what users see: latents dreamed from real starts under the recorded
actions (`dream_bank`, the shipped sampler with its view memory), and learns to draw the real frame of that step.

The loss (VQGAN's recipe, without its perceptual network, which would be a download):
- L1 + MSE against the real frame, on dreamed latents and on the real frames' own latents (dreams start from real
  frames and the view memory redraws them, so the decoder must keep drawing those);
- a small patch discriminator's hinge loss, which asks for the game's texture where the latent lost it. Its weight
  is set each step from the ratio of the two losses' gradients at the decoder's last layer, times `adversarial`,
  so it neither drowns the reconstruction nor vanishes as their scales drift.

Only the decoder changes: the encoder, and so every latent the dynamics model trains on or starts from, stays.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldsim.data.dataset import Dataset
from worldsim.evaluation.evaluate import clip_batch
from worldsim.model.autoencoder import reconstruction_loss, to_pixels
from worldsim.model.world_model import CONV_LAYOUT, WorldModel


@dataclass
class DreamBank:
    """Dreamed latents and the real frames they stand for, one row per dreamed frame."""

    latents: torch.Tensor
    """(N, C, h, w) float16: standardised latents the dynamics model dreamed."""
    frames: torch.Tensor
    """(N, H, W, 3) uint8: the real frame at the same step of the same episode."""
    horizon: torch.Tensor
    """(N,) int16: how many dreamed steps the latent is from the real start (1 = the first dreamed frame)."""


@torch.no_grad()
def dream_bank(model: WorldModel, ds: Dataset, clips: int, horizon: int = 16, batch: int = 32, seed: int = 0,
               steps: int | None = None, progress: bool = True) -> DreamBank:
    """`clips` dreams of `horizon` steps from random starts in `ds` (its episodes' recorded actions and pitch, the
    model's sampler as configured, `steps` shortcut steps per frame: default the model's): every dreamed latent with
    the real frame it should show."""
    from tqdm import tqdm

    from worldsim.sampling.sampler import Sampler

    if clips < 1 or horizon < 1:
        raise ValueError(f"a dream bank needs clips >= 1 and horizon >= 1, got clips={clips}, horizon={horizon}")
    k = model.start_frames
    rng = np.random.default_rng(seed)
    fits = [e for e in range(len(ds)) if ds.episode_length(e) + 1 >= k + horizon]
    if not fits:
        raise ValueError(f"no episode of {ds.root} holds {k} start frames + {horizon} steps")
    todo = [(int(e), int(rng.integers(0, ds.episode_length(e) + 2 - k - horizon))) for e in rng.choice(fits, clips)]
    latents, frames, ahead = [], [], []
    for i in tqdm(range(0, clips, batch), desc="dream bank", disable=not progress):
        group = todo[i:i + batch]
        eps = {e: ds.episode(e) for e, _ in group}
        ctx, real, flat, pitch = clip_batch(model, eps, group, horizon)
        sampler = Sampler(model, ctx, flat[:, :k - 1], steps=steps, seeds=[seed + i + j for j in range(len(group))],
                          pitch=pitch)
        for h in range(horizon):
            sampler.step(flat[:, k - 1 + h])
            latents.append(sampler.latents[:, 1].half().cpu())
            frames.append(torch.from_numpy(real[:, h]))
            ahead.append(torch.full((len(group),), h + 1, dtype=torch.int16))
    return DreamBank(torch.cat(latents), torch.cat(frames), torch.cat(ahead))


class PatchDiscriminator(nn.Module):
    """Real-or-decoded logits for overlapping patches of (B, 3, H, W) pixels in [-1, 1] (~22 px receptive field:
    the scale of the game's block textures, not of the scene's layout, which the L1 + MSE already asks for)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.GroupNorm(8, 2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, 1, 1), nn.GroupNorm(8, 4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class TuneResult:
    steps: int
    seconds: float
    dream_psnr: float
    """PSNR (dB) of decoded dreamed latents against the real frames over the last 50 steps' batches."""
    real_psnr: float
    """PSNR (dB) of decoded real latents (the autoencoder's reconstruction) over the same batches."""


def texture_energy(x: torch.Tensor, patch: int = 8) -> torch.Tensor:
    """How much fine texture each `patch` x `patch` patch of (B, 3, H, W) pixels holds: the mean absolute difference
    of neighbouring grey levels, both axes (`worldsim.evaluation.evaluate.sharpness`, locally) -> (B, 2, H/p, W/p)."""
    g = x.mean(1, keepdim=True)
    dx = F.pad((g[..., :, 1:] - g[..., :, :-1]).abs(), (0, 1))
    dy = F.pad((g[..., 1:, :] - g[..., :-1, :]).abs(), (0, 0, 0, 1))
    return F.avg_pool2d(torch.cat([dx, dy], 1), patch)


def tune_decoder(model: WorldModel, bank: DreamBank, minutes: float, batch: int = 32, lr: float = 5e-5,
                 adversarial: float = 0.5, texture: float = 0.0, adversarial_after: int = 200, seed: int = 0, bf16: bool = False,
                 max_steps: int | None = None,
                 progress: bool = True) -> TuneResult:
    """Fine-tune `model.ae.decoder` in place on `bank` for `minutes` or `max_steps`, whichever ends first (module
    docstring). The discriminator trains alone for its first `adversarial_after` steps: an untrained one's
    gradient is noise, and its weight would still be half the reconstruction's. The encoder, the dynamics
    network and the latent standardisation stay as they are. bf16: under bf16 autocast (where the CPU runs it
    natively: `worldsim.training.trainer.bf16_is_native`), ~2x faster."""
    from tqdm import tqdm

    if minutes <= 0 or batch < 1:
        raise ValueError(f"tuning needs minutes > 0 and batch >= 1, got minutes={minutes}, batch={batch}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dec = model.ae.decoder
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    model.requires_grad_(False)
    dec.requires_grad_(True)
    disc = PatchDiscriminator()
    opt_g = torch.optim.Adam(dec.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2 * lr, betas=(0.5, 0.9))
    last = dec.net[-1].weight
    mean, std = model.latent_mean[:, None, None], model.latent_std[:, None, None]
    n = len(bank.latents)
    end = time.monotonic() + 60 * minutes
    psnr: dict[str, list[float]] = {"dream": [], "real": []}
    step, start = 0, time.monotonic()
    bar = tqdm(total=int(60 * minutes), desc="tune decoder", unit="s", disable=not progress)
    while time.monotonic() < end and (max_steps is None or step < max_steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        target = to_pixels(bank.frames[idx]).contiguous(memory_format=CONV_LAYOUT)
        keep = target[: max(1, batch // 4)]  # a quarter of the batch keeps the real latents drawn as before
        with torch.no_grad(), autocast():
            z_real = model.ae.encode(keep).float()
        z_dream = bank.latents[idx].float() * std + mean
        with autocast():
            out = dec(torch.cat([z_dream, z_real]).contiguous(memory_format=CONV_LAYOUT)).float()
        fake, recon = out[:batch], out[batch:]
        rec, s_d = reconstruction_loss(fake, target, "dream")
        rec_real, s_r = reconstruction_loss(recon, keep, "real")
        loss = rec + rec_real
        if texture > 0:  # as much texture in each patch as the real frame holds there, wherever it lies
            loss = loss + texture * (texture_energy(fake) - texture_energy(target)).abs().mean()
        if adversarial > 0 and step >= adversarial_after:
            with autocast():
                gen = -disc(fake).float().mean()
            g_rec = torch.autograd.grad(loss, last, retain_graph=True)[0].norm()
            g_gen = torch.autograd.grad(gen, last, retain_graph=True)[0].norm()
            loss = loss + adversarial * (g_rec / (g_gen + 1e-4)).clamp(max=1e4).detach() * gen
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if adversarial > 0:  # the discriminator: real frames against the decoded dreams
            with autocast():
                logits = disc(torch.cat([target, fake.detach()])).float()
            d_loss = F.relu(1 - logits[:batch]).mean() + F.relu(1 + logits[batch:]).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        psnr["dream"].append(s_d["dream_psnr"])
        psnr["real"].append(s_r["real_psnr"])
        step += 1
        bar.n = min(int(time.monotonic() - start), bar.total)
        bar.set_postfix(dream=f"{np.mean(psnr['dream'][-50:]):.2f}", real=f"{np.mean(psnr['real'][-50:]):.2f}",
                        refresh=False)
        bar.refresh()
    bar.close()
    model.requires_grad_(False)
    return TuneResult(step, round(time.monotonic() - start, 1), round(float(np.mean(psnr["dream"][-50:])), 3),
                      round(float(np.mean(psnr["real"][-50:])), 3))
