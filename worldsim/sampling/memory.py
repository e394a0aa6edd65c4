"""View memory: a dream that turns away and back draws the place it saw, not a new one.

The motion prior moves the newest frame by the turn. Turned 90 degrees away and back, every step's prior is the
one before it moved, so what comes back into view is what the dream redrew on the way, and the start's door has
long left every prior (the network still sees it in its context, but nothing tells it which past frame matches
the view it is turning to). Yet while only the camera moves, the view alone decides the picture: a past frame of
the same view is the right prior for the new one. So each dream remembers its last frames
(`SamplerConfig.view_memory`) with the view (pitch, and yaw summed from the turns) each was seen from, and the
next frame's prior comes from the frame whose view is closest to the new one, turned by what is left of the turn
(the most recent of equally close ones): turned once around, a dream meets the world it started in. Any other
key (walking, jumping, breaking, opening a GUI) changes what a view shows: the memory then forgets all but the
newest frame.
"""

from __future__ import annotations

import torch


class ViewMemory:
    """Per dream, its last `size` frames (latent and picture) and the view of each; a frame not reachable from
    the newest by camera turns alone is forgotten (`valid`)."""

    def __init__(self, batch: int, size: int, latent_shape: tuple[int, ...], frame_hw: tuple[int, int],
                 device: torch.device | str = "cpu"):
        self.z = torch.zeros(batch, size, *latent_shape, device=device)
        self.frames = torch.zeros(batch, size, *frame_hw, 3, dtype=torch.uint8, device=device)
        self.view = torch.zeros(batch, size, 2, device=device)  # [pitch, yaw] degrees (NaN pitch: unknown)
        self.valid = torch.zeros(batch, size, dtype=torch.bool, device=device)
        self.newest = torch.zeros(batch, dtype=torch.long, device=device)  # the ring slot of each dream's newest frame

    def reset(self, rows: torch.Tensor, z: torch.Tensor, frames: torch.Tensor, views: torch.Tensor,
              kept: torch.Tensor) -> None:
        """Dreams `rows` restart from start frames: latents (R, S, ...), pictures (R, S, H, W, 3), views (R, S, 2)
        and which of them only camera turns lead from to the last one (R, S) bool."""
        s = min(z.shape[1], self.z.shape[1])
        self.valid[rows] = False
        self.z[rows, :s] = z[:, -s:].to(self.z.dtype)
        self.frames[rows, :s] = frames[:, -s:]
        self.view[rows, :s] = views[:, -s:].to(self.view.dtype)
        self.valid[rows, :s] = kept[:, -s:]
        self.newest[rows] = s - 1

    def source(self, view: torch.Tensor, camera_only: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the next frames' views (B, 2): the remembered frame to make each prior from (its latent (B, ...),
        picture (B, H, W, 3)) and its view (B, 2): the closest view (summed absolute degrees, yaw wrapped), the
        most recent on a tie; the newest where the step presses any key but the camera (`camera_only` False)."""
        b = torch.arange(len(view), device=view.device)
        d = self.view - view[:, None]
        d[..., 1] = torch.remainder(d[..., 1] + 180.0, 360.0) - 180.0
        dist = torch.nan_to_num(d, nan=0.0).abs().sum(-1)
        age = torch.remainder(self.newest[:, None] - torch.arange(self.z.shape[1], device=view.device), self.z.shape[1])
        dist = (dist + 1e-4 * age).masked_fill(~self.valid, float("inf"))  # the most recent wins a tie
        pick = torch.where(camera_only, dist.argmin(1), self.newest)
        return self.z[b, pick], self.frames[b, pick], self.view[b, pick]

    def push(self, z: torch.Tensor, frames: torch.Tensor, view: torch.Tensor, camera_only: torch.Tensor) -> None:
        """Remember each dream's new frame (B, ...), picture and view; forget the rest where the step pressed any
        key but the camera."""
        b = torch.arange(len(z), device=z.device)
        self.valid[~camera_only] = False
        slot = (self.newest + 1) % self.z.shape[1]
        self.z[b, slot] = z.to(self.z.dtype)
        self.frames[b, slot] = frames
        self.view[b, slot] = view.to(self.view.dtype)
        self.valid[b, slot] = True
        self.newest = slot
