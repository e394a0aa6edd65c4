"""The motion prior (`ModelConfig.motion_prior`): each frame also sees the frame before it, moved in pixels as its
camera action moves the picture, and encoded.

A camera turn moves the whole picture by a nearly constant number of pixels per degree: exact, cheap geometry
that a transformer over 2x2-cell patches learns only slowly (a 2 degree turn is a third of a latent cell). So
next to every noisy frame the network also sees the frame before it shifted by that frame's camera action and
predicts what the shift does not explain: parallax, the strip the turn reveals, walking, breaking. Without it,
1,100 steps of training left dreams unmoved by the camera (`docs/design_history.md`). The shift is made in pixel
space and then encoded: moving latents by a fraction of a cell cross-fades cells instead of moving the picture.
The pixels per degree are measured from the training data (`worldsim.evaluation.motion`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

PADDING = {"edge": "border", "mean": "zeros"}  # ModelConfig.prior_fill -> grid_sample's padding


class MotionPrior:
    """Moves frames by camera actions. Holds no weights: the calibration (pixels per degree) and the fill."""

    def __init__(self, camera: slice, px_per_deg: tuple[float, float], fill: str, downsample: int,
                 encode: Callable[[torch.Tensor], torch.Tensor]):
        """camera: where [pitch, yaw] sit in a flat action; encode: uint8 frames -> standardised latents."""
        if fill not in PADDING:
            raise ValueError(f"ModelConfig.prior_fill must be one of {sorted(PADDING)}, got {fill!r}")
        if camera is None or camera.stop - camera.start != 2:
            raise ValueError("ModelConfig.motion_prior needs a 'camera' Box of shape (2,) in the action space")
        self.camera, self.px_per_deg, self.fill, self.downsample, self.encode = camera, px_per_deg, fill, downsample, encode

    def pixel_shift(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (down, right) pixel shift (B,), (B,) of the flat actions' (B, A) camera turn."""
        cam = action[:, self.camera].float()
        return cam[:, 0] * self.px_per_deg[0], cam[:, 1] * self.px_per_deg[1]

    def moved(self, frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Frames (B, H, W, 3) uint8 moved by the camera action (B, A) in pixels (edges repeated), encoded ->
        (B, C, h, w). Training caches this once per recorded frame (`LatentCache.write_pixel_prior`)."""
        return self.encode(_moved_pixels(frame, *self.pixel_shift(action))).float()

    def fill_revealed(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """`moved` latents z (B, C, h, w) with the strip the camera action (B, A) reveals filled per the fill."""
        if self.fill == "edge":
            return z
        dy, dx = self.pixel_shift(action)
        inside = shift(torch.ones_like(z[:, :1]), dy / self.downsample, dx / self.downsample, "mean")
        return inside * z

    def __call__(self, frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """A recorded frame's successor's prior, as training reads it: the frame (B, H, W, 3) uint8 moved by the
        action (B, A), encoded, filled (a dream makes the same from its latent: `follow`). Decoded, it moves
        96-103 % of the real shift on held-out frames."""
        return self.fill_revealed(self.moved(frame, action), action)

    def follow(self, z: torch.Tensor, frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """A dream's next prior: its newest latent z (B, C, h, w) plus what the move changes in latent space,
        encode(moved frame) - encode(frame), filled; frame (B, H, W, 3) uint8 is the dream's picture of z (decoded,
        with its carried detail: only the difference of the two encodings enters). On a recorded frame
        this is what `__call__` gives (z is then its encoding), but a dream's own latents never pass through the
        autoencoder again: decoding and re-encoding a frame is not the identity, and a prior made that way
        compounded it (standing still, copying such a prior brightened the picture 2.9x in 300 steps; copying
        this one keeps it as it was). Only the rows whose camera turned are encoded (the others' change is 0)."""
        dy, dx = self.pixel_shift(action)
        out = z.float().clone()
        rows = ((dy != 0) | (dx != 0)).nonzero()[:, 0]
        if len(rows):
            both = self.encode(torch.cat([_moved_pixels(frame[rows], dy[rows], dx[rows]), frame[rows]])).float()
            out[rows] += both[: len(rows)] - both[len(rows):]
        return self.fill_revealed(out, action)

    def sequence(self, moved: torch.Tensor, flat: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Moved latents (B, L, C, h, w) of sequences -> each frame's prior: the revealed strip filled, zero where
        no action led into the frame (an episode's first frame: no frame before it)."""
        b, n = moved.shape[:2]
        p = self.fill_revealed(moved.reshape(b * n, *moved.shape[2:]).float(), flat.reshape(b * n, -1))
        return p.reshape(moved.shape) * known.float()[..., None, None, None]


def _moved_pixels(frame: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) moved by (dy, dx) pixels, edges repeated."""
    px = frame.permute(0, 3, 1, 2).float()
    return shift(px, dy, dx, "edge").round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def shift(z: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, fill: str = "edge") -> torch.Tensor:
    """Move each map of z (N, C, h, w) by (dy[i], dx[i]) pixels (down, right; fractions interpolate bilinearly);
    what comes in at an edge repeats the edge ("edge") or is zero ("mean": the mean of standardised latents)."""
    n, _, h, w = z.shape
    theta = torch.zeros(n, 2, 3, dtype=z.dtype, device=z.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx.to(z.dtype) / w  # output(x) = input(x - dx)
    theta[:, 1, 2] = -2.0 * dy.to(z.dtype) / h
    grid = F.affine_grid(theta, list(z.shape), align_corners=False)
    return F.grid_sample(z, grid, mode="bilinear", padding_mode=PADDING[fill], align_corners=False)
