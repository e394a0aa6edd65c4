"""Small layers both dynamics models share."""

from __future__ import annotations

import math

import torch
from torch import nn


def fourier(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of a level s in [0, 1] (scaled like a 0..1000 timestep)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    ang = s.float()[..., None] * 1000.0 * freqs
    return torch.cat([ang.cos(), ang.sin()], dim=-1)


class RMSNorm(nn.Module):
    """RMS normalisation written out, so it runs in whatever dtype autocast hands it (no fp32 round trip);
    `affine=False` when adaLN supplies the scale."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return y if self.weight is None else y * self.weight.to(x.dtype)
