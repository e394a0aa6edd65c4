"""Rectified flow: the training objective and the few-step sampler.

Why rectified flow rather than EDM: a frame is noised along the straight line z_s = (1 - s) z_0 + s * eps and
the network predicts the constant velocity v = eps - z_0. Straight paths are what a 1-3 step Euler sampler
integrates with the least error, one loss weighting serves every noise level, and the noise level s in [0, 1]
doubles as the per-frame "how much do I trust this frame" label that Diffusion Forcing needs for the context.
"""

from __future__ import annotations

import torch


def noise_levels(batch: int, frames: int, ctx_aug_prob: float, ctx_aug_max: float, generator: torch.Generator | None = None,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame noise levels (B, F) and the loss mask (B, F).

    Two regimes per window: (a) Diffusion Forcing: every frame its own logit-normal level, loss on every frame;
    (b) the rollout regime: context frames get a small level in [0, ctx_aug_max] (noise augmentation, as GameNGen
    and DIAMOND do), the last frame a logit-normal level, loss on the last frame only.
    """
    s = torch.sigmoid(torch.randn(batch, frames, generator=generator, device=device))
    mask = torch.ones(batch, frames, device=device)
    rollout = torch.rand(batch, generator=generator, device=device) < ctx_aug_prob
    ctx = torch.rand(batch, frames - 1, generator=generator, device=device) * ctx_aug_max
    s[rollout, :-1] = ctx[rollout]
    mask[rollout, :-1] = 0.0
    return s, mask


def add_noise(z0: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z_s for per-frame levels s (B, F) and latents (B, F, C, h, w)."""
    s = s[..., None, None, None]
    return (1 - s) * z0 + s * eps


def loss(model, z0: torch.Tensor, actions: torch.Tensor, ctx_aug_prob: float, ctx_aug_max: float,
         generator: torch.Generator | None = None, prior=None) -> torch.Tensor:
    """`prior(z_noisy) -> extra channels` (optional): what the network sees next to each noisy frame."""
    b, f = z0.shape[:2]
    s, mask = noise_levels(b, f, ctx_aug_prob, ctx_aug_max, generator, z0.device)
    eps = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    zs = add_noise(z0, s, eps)
    v = model(zs if prior is None else torch.cat([zs, prior(zs)], dim=2), s, actions)
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
def sample(velocity_fn, start: torch.Tensor, steps: int, shift: float) -> torch.Tensor:
    """Euler integration of dz/ds = v from pure noise `start` (s = 1) to a clean latent (s = 0): `steps` calls."""
    z = start.float()
    levels = schedule(steps, shift)
    for s_now, s_next in zip(levels[:-1], levels[1:]):
        s = torch.full((z.shape[0],), s_now, device=z.device)
        z = z + (s_next - s_now) * velocity_fn(z, s).float()
    return z
