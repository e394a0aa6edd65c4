"""Rectified flow: the training objective and the few-step sampler.

Why rectified flow rather than EDM: a frame is noised along the straight line z_s = (1 - s) z_0 + s * eps and
the network predicts the constant velocity v = eps - z_0. Straight paths are what a 1-3 step Euler sampler
integrates with the least error, one loss weighting serves every noise level, and the noise level s in [0, 1]
doubles as the per-frame "how much do I trust this frame" label that Diffusion Forcing needs for the context.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def noise_levels(batch: int, frames: int, ctx_aug_prob: float, ctx_aug_max: float, generator: torch.Generator | None = None,
                 device=None, sampler_levels: Sequence[float] = (), sampler_level_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame noise levels (B, F) and the loss mask (B, F).

    Two regimes per window: (a) Diffusion Forcing: every frame its own logit-normal level, loss on every frame;
    (b) the rollout regime: context frames get a small level in [0, ctx_aug_max] (noise augmentation, as GameNGen
    and DIAMOND do), the last frame a logit-normal level, loss on the last frame only. In that regime a share
    `sampler_level_prob` of the last frames instead takes one of `sampler_levels`, the levels a few-step sampler
    evaluates the network at: a logit-normal level almost never comes near s = 1 (P(s > 0.95) = 0.2 %), yet
    every sampled frame starts there, and a 1-step sampler uses nothing else.
    """
    s = torch.sigmoid(torch.randn(batch, frames, generator=generator, device=device))
    mask = torch.ones(batch, frames, device=device)
    rollout = torch.rand(batch, generator=generator, device=device) < ctx_aug_prob
    ctx = torch.rand(batch, frames - 1, generator=generator, device=device) * ctx_aug_max
    s[rollout, :-1] = ctx[rollout]
    mask[rollout, :-1] = 0.0
    if sampler_levels and sampler_level_prob > 0:
        table = torch.tensor(list(sampler_levels), device=device)
        pick = table[torch.randint(len(table), (batch,), generator=generator, device=device)]
        use = rollout & (torch.rand(batch, generator=generator, device=device) < sampler_level_prob)
        s[:, -1] = torch.where(use, pick, s[:, -1])
    return s, mask


def sampler_levels(shift: float, max_steps: int = 3) -> list[float]:
    """The noise levels the network is evaluated at by 1..max_steps-step samplers, with repeats (s = 1 once per
    sampler): training on these spends the few-step sampler's budget where it is used."""
    return [s for n in range(1, max_steps + 1) for s in schedule(n, shift)[:-1]]


def add_noise(z0: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z_s for per-frame levels s (B, F) and latents (B, F, C, h, w)."""
    s = s[..., None, None, None]
    return (1 - s) * z0 + s * eps


def loss(model, z0: torch.Tensor, actions: torch.Tensor, ctx_aug_prob: float, ctx_aug_max: float,
         generator: torch.Generator | None = None, prior=None, sampler_levels: Sequence[float] = (),
         sampler_level_prob: float = 0.0) -> torch.Tensor:
    """`prior(z_noisy, s, eps) -> extra channels` (optional): what the network sees next to each noisy frame."""
    b, f = z0.shape[:2]
    s, mask = noise_levels(b, f, ctx_aug_prob, ctx_aug_max, generator, z0.device, sampler_levels, sampler_level_prob)
    eps = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    zs = add_noise(z0, s, eps)
    v = model(zs if prior is None else torch.cat([zs, prior(zs, s, eps)], dim=2), s, actions)
    per_frame = (v.float() - (eps - z0).float()).pow(2).mean(dim=(2, 3, 4))
    return (per_frame * mask).sum() / mask.sum()


def schedule(steps: int, shift: float = 1.0) -> list[float]:
    """Noise levels from 1 to 0 for `steps` Euler steps; shift > 1 spends more of them at high noise."""
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    out = []
    for i in range(steps + 1):
        u = 1.0 - i / steps
        out.append(shift * u / (1 + (shift - 1) * u))
    return out


@torch.no_grad()
def sample(velocity_fn, start: torch.Tensor, steps: int, shift: float, start_level: torch.Tensor | None = None) -> torch.Tensor:
    """Euler integration of dz/ds = v from `start` at s = 1 (pure noise) to a clean latent (s = 0): `steps` calls.
    `start_level` (B,): rows whose `start` is already part signal (a warm start) begin at that level instead; each
    row's schedule is the usual one scaled to end its first step where its own level says."""
    z = start.float()
    levels = torch.tensor(schedule(steps, shift), device=z.device)
    top = torch.ones(z.shape[0], device=z.device) if start_level is None else start_level.float().to(z.device)
    for i in range(steps):
        s_now, s_next = top * levels[i], top * levels[i + 1]
        z = z + (s_next - s_now).view(-1, *[1] * (z.dim() - 1)) * velocity_fn(z, s_now).float()
    return z
