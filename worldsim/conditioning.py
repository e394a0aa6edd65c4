"""What conditions each generated frame besides its noise level: the action that led into it (and, for the first
model with `ModelConfig.view_pitch`, the view's pitch).

Generic over any Dict action space of Discrete/Box entries: actions are flattened by `ActionCodec` (documented
layout), Box entries (the camera) pass through a signed log, sign(x) * log1p(|x|), so a 0.15 degree turn and a
30 degree turn both stay distinct numbers, never binned. A trailing flag says whether an action is known at all
(the first frame of a window has no action leading into it).

The view's pitch: where the data reports the camera's absolute pitch, every frame is also conditioned on it
(sines and cosines of the angle, and a flag saying whether it is known). Frames cannot tell "looking at the
ground" from "standing on a plain"; without the pitch the first model's long dreams that had looked down for a
while forgot where the horizon was. In a dream the pitch is summed from the camera actions and clamped at
+-`pitch_limit`, as the game does (`pitch_after`). The space-time model does not need it: it keeps 40 frames.
"""

from __future__ import annotations

import numpy as np
import torch

PITCH_FEATURES = 9  # sin and cos of 1..4 times the angle, and the known flag


class Conditioning:
    """WorldModel's action and pitch features (uses its `codec`, `box_mask`, `cfg` and `latent_mean`)."""

    def action_features(self, flat: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Flat action vectors (..., A) -> network input (..., A + 1)."""
        flat = flat.float()
        flat = torch.where(self.box_mask, torch.sign(flat) * torch.log1p(flat.abs()), flat)
        if known is None:
            known = torch.ones(flat.shape[:-1], device=flat.device)
        return torch.cat([flat * known[..., None], known[..., None].float()], dim=-1)

    def frame_features(self, flat: torch.Tensor, known: torch.Tensor | None = None,
                       pitch: torch.Tensor | None = None) -> torch.Tensor:
        """What conditions each frame besides its noise level: the action that led into it and, for models with
        `view_pitch`, the view's pitch in degrees (NaN or None: unknown)."""
        a = self.action_features(flat, known)
        if not self.cfg.view_pitch:
            return a
        if pitch is None:
            pitch = torch.full(flat.shape[:-1], float("nan"), device=flat.device)
        return torch.cat([a, pitch_features(pitch, self.cfg.pitch_limit)], dim=-1)

    def pitch_after(self, pitch: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """The view's pitch (B,) after the flat actions (B, A) are taken: the camera's pitch change added, clamped
        at +-pitch_limit as the game clamps it (unknown stays unknown; no camera in the space: unchanged)."""
        cam = self.codec.slices.get("camera")
        if cam is None:
            return pitch
        return (pitch + flat[:, cam.start].float()).clamp(-self.cfg.pitch_limit, self.cfg.pitch_limit)

    def flat_actions(self, actions: list[dict]) -> torch.Tensor:
        """A list of action dicts -> (N, A) float tensor (validated)."""
        vecs = np.stack([self.codec.encode(self.codec.validate(a)) for a in actions]) if actions else np.zeros((0, self.codec.dim), np.float32)
        return torch.from_numpy(vecs).to(self.latent_mean.device)



def pitch_features(pitch: torch.Tensor, limit: float = 90.0) -> torch.Tensor:
    """Pitch in degrees (...) -> (..., 9): sin(k a), cos(k a) for k = 1..4 of the clamped angle a, and a flag that
    is 1 where the pitch is known (NaN: unknown, all features 0). Several harmonics so a small MLP can place the
    horizon, whose row moves with tan(a), from a few numbers."""
    known = torch.isfinite(pitch)
    a = torch.deg2rad(torch.nan_to_num(pitch.float(), nan=0.0).clamp(-limit, limit))
    k = torch.arange(1, 5, device=pitch.device, dtype=torch.float32)
    ang = a[..., None] * k
    f = torch.cat([ang.sin(), ang.cos()], dim=-1) * known[..., None]
    return torch.cat([f, known[..., None].float()], dim=-1)

