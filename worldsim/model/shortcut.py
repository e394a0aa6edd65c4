"""Shortcut forcing (Dreamer 4, arXiv 2509.24527): the objective and the few-step sampler of the space-time model.

Signal levels tau in [0, 1] (0: pure noise, 1: clean): z_tau = (1 - tau) * eps + tau * x. Three ideas together:

- **Diffusion Forcing**: every frame of a sequence has its own level, so one model both denoises the newest
  frame and reads a context of cleaner frames, and a sequence teaches every frame at once.
- **Shortcut models**: the network also gets the step size d the sampler will take. At the smallest step it is
  trained by flow matching; at every larger d its step must equal two steps of d/2 taken by the network itself
  (the bootstrap target, without gradient). A 1-4 step sampler then takes steps the network has learnt to take
  whole, instead of Euler steps along a mean guess that blur.
- **x-prediction** with the ramp weight w(tau) = 0.9 tau + 0.1: the network predicts the clean frame, and the
  loss is in x-space (velocity prediction makes high-frequency errors that accumulate over long rollouts).

A share of the sequences is in the *rollout regime*: most frames at a context level near clean, as a dream's
past frames are (the sampler corrupts them to `SamplerConfig.context_noise`), the rest at denoising levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Net = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (z, level, step, cond) -> x


def ramp(level: torch.Tensor) -> torch.Tensor:
    """The loss weight w(tau) = 0.9 tau + 0.1: frames nearer clean weigh more (their detail is what is seen)."""
    return 0.9 * level + 0.1


def draw_levels(batch: int, frames: int, step_levels: int, bootstrap_share: float, rollout_share: float,
                context_min: float, generator: torch.Generator | None = None, device=None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame signal levels (B, F), step-size indices (B, F) (d = 2^-index) and which frames take the
    bootstrap target (B, F) bool.

    A share `bootstrap_share` of the sequences trains larger steps: each frame a step d = 2^-i, i < step_levels,
    and a level on d's grid {0, d, ..., 1 - d}, as the sampler visits them. The others train the smallest step
    by flow matching, levels on its grid. In a share `rollout_share` of the sequences, 80 % of the frames are
    context instead: a level in [context_min, 1], the smallest step, flow-matching target."""
    kw = {"generator": generator, "device": device}
    n_min = 2**step_levels
    level = torch.randint(0, n_min, (batch, frames), **kw).float() / n_min
    step = torch.full((batch, frames), step_levels, dtype=torch.long, device=device)
    boot_row = torch.rand(batch, **kw) < bootstrap_share
    i = torch.randint(0, step_levels, (batch, frames), **kw) if step_levels > 0 else torch.zeros_like(step)
    d = 2.0 ** -i.float()
    on_grid = torch.floor(torch.rand(batch, frames, **kw) / d) * d  # uniform over {0, d, ..., 1 - d}
    boot = boot_row[:, None].expand(batch, frames) & (step_levels > 0)
    level = torch.where(boot, on_grid, level)
    step = torch.where(boot, i, step)
    ctx = (torch.rand(batch, **kw) < rollout_share)[:, None] & (torch.rand(batch, frames, **kw) < 0.8)
    ctx_level = context_min + (1 - context_min) * torch.rand(batch, frames, **kw)
    level = torch.where(ctx, ctx_level, level)
    step = torch.where(ctx, torch.full_like(step, step_levels), step)
    return level, step, boot & ~ctx


def mix(x: torch.Tensor, eps: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """z_tau for per-frame levels (B, F) of x, eps (B, F, C, h, w)."""
    t = level[..., None, None, None].to(x.dtype)
    return (1 - t) * eps + t * x


def velocity(x_hat: torch.Tensor, z: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """The step direction (x_hat - z) / (1 - tau) implied by a clean-frame prediction."""
    return (x_hat.float() - z.float()) / (1 - level.float())[..., None, None, None]


def loss(net: Net, x: torch.Tensor, cond: torch.Tensor, step_levels: int, bootstrap_share: float, rollout_share: float,
         context_min: float, generator: torch.Generator | None = None,
         prior: torch.Tensor | None = None, inputs: torch.Tensor | None = None,
         weight: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Shortcut-forcing loss of `net` on clean latent sequences x (B, F, C, h, w) under per-frame conditioning
    cond (B, F, A) (the actions); `net(z, level, step, cond)` predicts clean frames. prior (B, F, C', h, w): extra
    input channels per frame, never noised (the motion prior), concatenated after each noisy frame's. Returns the
    loss and its flow / bootstrap parts. inputs (B, F, C, h, w): what is noised instead of x (self forcing: the
    model's own dream of x), while x stays the target; weight (B, F): each frame's share of the loss (default 1)."""
    b, f = x.shape[:2]

    def run(z: torch.Tensor, level: torch.Tensor, step: torch.Tensor, c: torch.Tensor, rows=slice(None)) -> torch.Tensor:
        """net on noisy frames z of sequences `rows`, the prior's channels (if any) after z's."""
        return net(z if prior is None else torch.cat([z, prior[rows].to(z.dtype)], dim=2), level, step, c)

    level, step, boot = draw_levels(b, f, step_levels, bootstrap_share, rollout_share, context_min, generator, x.device)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    z = mix(x if inputs is None else inputs.to(x.dtype), eps, level)
    target = x.float().clone()
    rows = boot.any(dim=1).nonzero()[:, 0]
    if len(rows):  # two half steps taken by the network itself, without gradient, are the target of one whole step
        with torch.no_grad():
            zb, lb, sb, mb, cb = z[rows], level[rows], step[rows], boot[rows], cond[rows]
            half = torch.where(mb, 2.0 ** -(sb.float() + 1), torch.zeros_like(lb))
            s_half = torch.where(mb, sb + 1, sb)
            v1 = velocity(run(zb, lb, s_half, cb, rows), zb, lb)
            z_mid = zb.float() + half[..., None, None, None] * v1  # only the bootstrap frames move
            l_mid = lb + half
            v2 = velocity(run(z_mid.to(z.dtype), l_mid, s_half, cb, rows), z_mid, l_mid)
            x_boot = zb.float() + (1 - lb)[..., None, None, None] * (v1 + v2) / 2
            target[rows] = torch.where(mb[..., None, None, None], x_boot, target[rows])
    x_hat = run(z, level, step, cond)
    per_frame = (x_hat.float() - target).pow(2).mean(dim=(2, 3, 4)) * ramp(level)
    if weight is not None:
        per_frame = per_frame * weight
    total = per_frame.mean()
    n_boot = boot.sum().clamp_min(1)
    pf = per_frame.detach()
    stats = {"flow_loss": float((pf * ~boot).sum() / (~boot).sum().clamp_min(1)),
             "bootstrap_loss": float((pf * boot).sum() / n_boot)}
    return total, stats


def step_index(steps: int, step_levels: int) -> int:
    """The step-size index of an n-step sampler: d = 1/n = 2^-index; n must be a power of two <= 2^step_levels."""
    i = int(round(math.log2(steps))) if steps >= 1 else -1
    if steps < 1 or 2**i != steps or i > step_levels:
        raise ValueError(f"sampling steps must be a power of two from 1 to {2**step_levels}, got {steps}")
    return i


def advance(z: torch.Tensor, x_hat: torch.Tensor, level: torch.Tensor, steps: int) -> torch.Tensor:
    """One step of an n-step sampler: from z (B, C, h, w) at per-row signal levels (B,) toward the network's
    clean-frame prediction x_hat, by 1/steps of the way to clean. The last step (level 1 - 1/steps) lands on x_hat."""
    return z.float() + velocity(x_hat[:, None], z[:, None], level[:, None])[:, 0] / steps
