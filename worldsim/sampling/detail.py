"""Detail carry: the pixels a latent does not hold, carried from frame to frame of a dream.

The autoencoder rebuilds a frame at ~29 dB: its 16x16x8 latent drops fine texture. A dream decodes every frame
from a latent, so even a perfect dynamics model shows the game at the autoencoder's quality, and standing still,
where copying the last frame scores ~47 dB, a dream scores ~30 at best. Yet a dream starts from real frames, and
what their latents miss is known: detail = frame - decode(latent). So each dreamed frame is its decoded latent
plus the last frame's detail, moved with the camera as the motion prior moves pixels, and kept at each pixel in
proportion to how little the decoded picture changed there: a wall that stays keeps its texture, while what the
dream redraws (a turn's revealed strip, a broken block, the ground passing by) is shown from its latent alone, so
stale texture never lies over new content. Nothing is learnt; the dynamics model still works in latents.

A dream's latents also carry its sampling noise: standing still, each decoded frame differs from the last by a few
levels everywhere, so the picture shimmers and never equals the unchanged world (~41 dB where copying scores the
cap). With `still_below`, a pixel whose decoded value moved less than that since the picture it shows was decoded
keeps its shown value exactly, and its reference stays where it was, so a slow change still adds up and appears
once it passes the threshold (hysteresis, not a dead zone that would freeze a slow fade). Only on the steps the
player does nothing: a turn moves every pixel by a whole-pixel approximation of the rotation, and kept pixels would
pile up its rounding (the turn holds lost 1.2 dB with it on in turns); and where a key asks for a change the
dream's first small steps of it (a walk begun from a stand) must show, not be held back as noise.
"""

from __future__ import annotations

import torch

from worldsim.model.motion_prior import shift


class DetailCarry:
    """Per dream, the detail of its newest frame (frame - its decoded latent) and that decoded latent."""

    def __init__(self, batch: int, frame_hw: tuple[int, int], change_scale: float, device: torch.device | str = "cpu",
                 still_below: float = 0.0):
        """change_scale: a change of the decoded picture (mean absolute over the channels, 0-1) at which a
        pixel's detail is dropped; smaller changes keep 1 - change / change_scale of it (`SamplerConfig.detail_carry`).
        still_below: a pixel whose decoded value moved less than this (levels, largest channel) keeps the value shown
        (`SamplerConfig.still_below`; 0: none)."""
        if change_scale <= 0:
            raise ValueError(f"SamplerConfig.detail_carry must be > 0 to carry detail, got {change_scale}")
        if not 0 <= still_below <= 255:
            raise ValueError(f"SamplerConfig.still_below must be 0-255 levels, got {still_below}")
        self.change_scale, self.still_below = change_scale, still_below
        self.detail = torch.zeros(batch, 3, *frame_hw, device=device)
        self.decoded = torch.zeros(batch, 3, *frame_hw, device=device)

    def reset(self, rows: torch.Tensor, frames: torch.Tensor, decoded: torch.Tensor) -> None:
        """Dreams `rows` restart from real frames (R, H, W, 3) uint8 whose latents decode to `decoded` (same shape)."""
        d = _planes(decoded)
        self.decoded[rows] = d
        self.detail[rows] = _planes(frames) - d

    def __call__(self, decoded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                 idle: torch.Tensor | None = None) -> torch.Tensor:
        """The frames (B, H, W, 3) uint8 of a step: its decoded latents (same shape) with the detail carried over
        the camera's pixel move (dy, dx) (B,), (B,) (`MotionPrior.pixel_shift`); `idle` (B,) bool: the dreams whose
        player did nothing this step, where `still_below` applies (None: none)."""
        d = _planes(decoded)
        moved = (dy != 0) | (dx != 0)
        before, detail = self.decoded, self.detail
        if bool(moved.any()):  # a turn moves the picture and its detail; the revealed strip has none
            before, detail = before.clone(), detail.clone()
            before[moved] = shift(self.decoded[moved], dy[moved], dx[moved], "edge")
            detail[moved] = shift(self.detail[moved], dy[moved], dx[moved], "mean")
        diff = d - before
        keep = (1 - diff.abs().mean(1, keepdim=True) / 255.0 / self.change_scale).clamp(0, 1)
        frames = (d + keep * detail).round().clamp(0, 255)
        if self.still_below > 0 and idle is not None and bool(idle.any()):
            # unchanged within the dream's noise where the player did nothing: the pixel shown, its reference kept
            still = (diff.abs().amax(1, keepdim=True) < self.still_below) & (idle & ~moved)[:, None, None, None]
            frames = torch.where(still, (before + detail).round().clamp(0, 255), frames)
            d = torch.where(still, before, d)
        self.detail, self.decoded = frames - d, d
        return frames.permute(0, 2, 3, 1).to(torch.uint8)


def _planes(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) -> float (B, 3, H, W) in 0..255."""
    return frames.permute(0, 3, 1, 2).float()
