"""The motion prior (`ModelConfig.motion_prior`), an input of both model generations.

A camera turn moves the whole picture by a nearly constant number of pixels per degree, an exact, cheap piece of
geometry that the first model's transformer over 16x16-pixel patches learnt only slowly (a 2 degree turn is a
1.4 pixel shift). So next to every noisy frame that network also sees the frame before it shifted by that
frame's camera action (bilinear; the revealed strip per `prior_fill`); it predicts what the shift does not
explain: parallax, the strip the turn reveals, walking, breaking. The pixels per degree are measured from the
training data (`worldsim.motion`), so the prior knows no more than the recorded frames and actions.
The space-time model (generation 2) takes it in pixel space only (`pixel_prior`), for every frame of its
sequences: without it, 1,100 steps of training left its dreams unmoved by the camera (a turn changed the next
frame by 0.4 grey levels; `docs/generation2.md`), since learning to move a picture by a fraction of a patch from
a few numbers is slow, and a learnt latent shift won by blurring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from worldsim import view_atlas

PRIOR_FILLS = {"edge": "border", "mean": "zeros", "view": "zeros"}  # ModelConfig.prior_fill -> grid_sample's padding

if TYPE_CHECKING:
    from worldsim.world_model import WorldModel


class MotionPrior:
    """WorldModel's motion-prior methods (the view-atlas fill and the latent prior: the first model only)."""

    def set_prior_fill(self, fill: str, atlas: torch.Tensor | None = None) -> WorldModel:
        """Change how the motion prior fills the strip a camera move reveals; "view" needs the view atlas
        (`worldsim.view_atlas`), which is then saved with the weights."""
        if fill not in PRIOR_FILLS:
            raise ValueError(f"prior fill must be one of {sorted(PRIOR_FILLS)}, got {fill!r}")
        if fill == "view":
            if atlas is None:
                raise ValueError('prior fill "view" needs the view atlas (worldsim.view_atlas.build / from_dataset)')
            self.register_buffer("view_atlas", atlas.to(self.latent_mean.device, torch.float32))
        elif "view_atlas" in self._buffers:
            del self._buffers["view_atlas"]
        self.cfg.prior_fill = fill
        return self


    def set_prior_sampling(self, pixel_prior: bool | None = None, prior_start: float | None = None) -> WorldModel:
        """How rollouts use the motion prior (None: keep): `pixel_prior` makes the new frame's prior in pixel
        space (`pixel_prior`); `prior_start` s0 in [0, 1) starts a turning frame's sampling at noise level s0 from
        that prior instead of from pure noise (0: off; see `predict_next`)."""
        if pixel_prior is not None:
            if not isinstance(pixel_prior, bool):
                raise ValueError(f"pixel_prior must be True or False, got {pixel_prior!r}")
            self.cfg.sampler.pixel_prior = pixel_prior
        if prior_start is not None:
            if isinstance(prior_start, bool) or not isinstance(prior_start, (int, float)) or not 0 <= prior_start < 1:
                raise ValueError(f"prior_start must be a noise level in [0, 1) (0: off), got {prior_start!r}")
            self.cfg.sampler.prior_start = float(prior_start)
        return self

    @property
    def trains_on_pixel_prior(self) -> bool:
        """Whether training gives the new frame the pixel-space prior (a latent cache with moved.f16): a model trains
        on the prior its sampler makes."""
        return self.cfg.motion_prior and self.cfg.sampler.pixel_prior

    def motion_prior(self, z: torch.Tensor, flat_actions: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, C, h, w) latents and the flat actions leading into each frame (B, F, A) -> (B, F, C, h, w): for
        every frame, the frame before it moved as that frame's camera action moves the picture (zeros for the
        first frame, which has no frame before it; an unknown action is all zeros: no move). With
        `prior_fill="view"`, the revealed strip takes the view atlas's rows at that frame's pitch (B, F) (unknown
        pitch: the mean)."""
        b, f, c, h, w = z.shape
        cam = flat_actions[:, 1:, self.camera].float().reshape(-1, 2)  # [pitch, yaw] degrees
        down = self.cfg.ae.downsample
        dy = cam[:, 0] * self.cfg.camera_px_per_deg[0] / down
        dx = cam[:, 1] * self.cfg.camera_px_per_deg[1] / down
        fill_rows = None
        if self.cfg.prior_fill == "view":
            fill_rows = self._view_rows(None if pitch is None else pitch[:, 1:].reshape(-1), b * (f - 1))
        moved = shift(z[:, :-1].reshape(-1, c, h, w).float(), dy, dx, self.cfg.prior_fill, fill_rows)
        return torch.cat([torch.zeros_like(z[:, :1]), moved.to(z.dtype).reshape(b, f - 1, c, h, w)], dim=1)

    def pixel_prior(self, frame: torch.Tensor, action: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """The new frame's motion prior made in pixel space: the last frame (B, H, W, 3) uint8 moved by the camera
        action (B, A) by its exact pixel shift and encoded -> standardised latents (B, C, h, w); the revealed strip
        is filled as `motion_prior` fills it (pitch (B,): the new frame's, for the "view" fill). Why: moving the
        latents by a fraction of a cell (a 2 degree turn is a third of a cell) cross-fades neighbouring cells
        instead of moving the picture. Decoded, that prior moves a tenth (yaw) to a fifth (pitch) of the real
        shift; this one moves all of it (96-103 % on held-out frames)."""
        return self.fill_revealed(self.moved_latents(frame, action), action, pitch)

    def moved_latents(self, frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The encoder's half of `pixel_prior`: frames (B, H, W, 3) uint8 moved by the camera action (B, A) in
        pixels (edges repeated), encoded. Training caches it once per frame (`LatentCache.write_pixel_prior`)."""
        dy, dx = self._camera_px(action)
        px = frame.permute(0, 3, 1, 2).float()
        moved = shift(px, dy, dx, "edge").round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return self.encode(moved).float()

    def fill_revealed(self, z: torch.Tensor, action: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """`moved_latents` z (B, C, h, w) with the strip the camera action (B, A) reveals filled per `prior_fill`."""
        if self.cfg.prior_fill == "edge":
            return z
        dy, dx = self._camera_px(action)
        down = self.cfg.ae.downsample
        inside = shift(torch.ones_like(z[:, :1]), dy / down, dx / down, "mean")
        if self.cfg.prior_fill == "mean":
            return inside * z
        return inside * z + (1 - inside) * self._view_rows(pitch, len(z))[..., None]

    def camera_moves(self, action: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the flat actions' (B, A) camera turn moves the picture at all (else a moved frame is itself)."""
        dy, dx = self._camera_px(action)
        return (dy != 0) | (dx != 0)

    def _camera_px(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (down, right) pixel shift (B,), (B,) of the flat actions' (B, A) camera turn."""
        cam = action[:, self.camera].float()
        return cam[:, 0] * self.cfg.camera_px_per_deg[0], cam[:, 1] * self.cfg.camera_px_per_deg[1]

    def _view_rows(self, pitch: torch.Tensor | None, n: int) -> torch.Tensor:
        """The view atlas's rows (n, C, h) at n pitches in degrees (None or NaN: unknown, the mean latent)."""
        p = torch.full((n,), float("nan"), device=self.latent_mean.device) if pitch is None else pitch.float()
        return view_atlas.rows(self.view_atlas.float(), p)


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
