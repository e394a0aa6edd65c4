"""Moving latent frames in space: the shift both generations use to carry the last frame along with the camera.

`shift` moves maps by fractional pixels (bilinear). The first model moves by a measured number of pixels per
degree of camera turn (`worldsim.motion_prior`); the space-time model learns the move (`LearnedShift`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIOR_FILLS = {"edge": "border", "mean": "zeros", "view": "zeros"}  # ModelConfig.prior_fill -> grid_sample's padding


def shift(z: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, fill: str = "edge",
          fill_rows: torch.Tensor | None = None) -> torch.Tensor:
    """Move each map of z (N, C, h, w) by (dy[i], dx[i]) pixels (down, right; fractions interpolate bilinearly);
    what comes in at an edge repeats the edge (`fill="edge"`), is zero (`"mean"`: the mean of standardised latents)
    or, given `fill_rows` (N, C, h), takes those rows' values (`"view"`: the view atlas at the new pitch; the
    partly revealed boundary column blends). WorldModel checks its config's fill once, at construction."""
    n, _, h, w = z.shape
    theta = torch.zeros(n, 2, 3, dtype=z.dtype, device=z.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx.to(z.dtype) / w  # output(x) = input(x - dx)
    theta[:, 1, 2] = -2.0 * dy.to(z.dtype) / h
    grid = F.affine_grid(theta, list(z.shape), align_corners=False)
    out = F.grid_sample(z, grid, mode="bilinear", padding_mode=PRIOR_FILLS[fill], align_corners=False)
    if fill_rows is None:
        return out
    inside = F.grid_sample(torch.ones_like(z[:, :1]), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + (1 - inside) * fill_rows.to(z.dtype)[..., None]


class LearnedShift(nn.Module):
    """The space-time model's input beside each noisy frame: the frame before it, moved by a shift (rows, columns,
    in latent pixels) that a small MLP learns from the action features. Why: a camera turn moves the whole picture,
    and a transformer whose conditioning acts per channel learns to move things in space only slowly (the first
    space-time run, 1,079 steps, ignored the camera). A learnt shift gets its gradient straight from the loss
    through the bilinear sampling, needs no pixels-per-degree measurement, and starts at zero: the frame before,
    unmoved. What the shift does not explain (parallax, walking, the revealed strip, breaking) the network does."""

    def __init__(self, cond_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def offsets(self, feats: torch.Tensor) -> torch.Tensor:
        """(..., A) action features -> (..., 2) shift (down, right) in latent pixels."""
        return self.mlp(feats)

    def forward(self, prev: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """prev (B, F, C, h, w): each frame's predecessor as the network sees it; feats (B, F, A) -> moved (B, F, C,
        h, w); what comes in at an edge is the latents' mean (zero)."""
        b, f, c, h, w = prev.shape
        d = self.offsets(feats.to(prev.dtype)).reshape(b * f, 2)
        return shift(prev.reshape(b * f, c, h, w), d[:, 0], d[:, 1], "mean").reshape(b, f, c, h, w)
