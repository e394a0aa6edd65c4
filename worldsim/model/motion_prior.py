"""The motion prior (`ModelConfig.motion_prior`): each frame also sees the frame before it, moved in pixels as its
camera action moves the picture, and encoded.

A camera turn moves the whole picture by a nearly constant number of pixels per degree: exact, cheap geometry
that a transformer over 2x2-cell patches learns only slowly (a 2 degree turn is a third of a latent cell). So
next to every noisy frame the network also sees the frame before it shifted by that frame's camera action and
predicts what the shift does not explain: parallax, the strip the turn reveals, walking, breaking. Without it,
1,100 steps of training left dreams unmoved by the camera (`docs/design_history.md`). The shift is made in pixel
space and then encoded: moving latents by a fraction of a cell cross-fades cells instead of moving the picture.
The pixels per degree are measured from the training data (`worldsim.evaluation.motion`).

A shift is the turn's move only near the centre of the picture: through a 70 degree lens a turn also stretches
and bends the picture toward its edges. Geometry "rotation" moves each pixel exactly as the camera's rotation
does (a homography of the field of view and the pitch it turns from; depth does not enter a pure turn). On
held-out turning frames it leaves a third less latent error than the calibrated shift
(`docs/bench/rotation_prior.json`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

PADDING = {"edge": "border", "mean": "zeros"}  # ModelConfig.prior_fill -> grid_sample's padding
GEOMETRIES = ("shift", "rotation")  # ModelConfig.prior_geometry


class MotionPrior:
    """Moves frames by camera actions. Holds no weights: the calibration (pixels per degree) and the fill."""

    def __init__(self, camera: slice, px_per_deg: tuple[float, float], fill: str, downsample: int,
                 encode: Callable[[torch.Tensor], torch.Tensor], geometry: str = "shift", fov: float = 70.0):
        """camera: where [pitch, yaw] sit in a flat action; encode: uint8 frames -> standardised latents;
        geometry, fov: `ModelConfig.prior_geometry`, `ModelConfig.camera_fov`."""
        if fill not in PADDING:
            raise ValueError(f"ModelConfig.prior_fill must be one of {sorted(PADDING)}, got {fill!r}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"ModelConfig.prior_geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if not 0 < fov < 180:
            raise ValueError(f"ModelConfig.camera_fov must be between 0 and 180 degrees, got {fov}")
        if camera is None or camera.stop - camera.start != 2:
            raise ValueError("ModelConfig.motion_prior needs a 'camera' Box of shape (2,) in the action space")
        self.camera, self.px_per_deg, self.fill, self.downsample, self.encode = camera, px_per_deg, fill, downsample, encode
        self.geometry, self.fov = geometry, fov

    def pixel_shift(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (down, right) pixel shift (B,), (B,) of the flat actions' (B, A) camera turn."""
        cam = action[:, self.camera].float()
        return cam[:, 0] * self.px_per_deg[0], cam[:, 1] * self.px_per_deg[1]

    def moved_pixels(self, frame: torch.Tensor, action: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, H, W, 3) uint8 moved by the camera action (B, A) (edges repeated): shifted, or rotated from
        the view's pitch (B,) degrees before the turn (NaN or None: level)."""
        if self.geometry == "shift":
            return _moved_pixels(frame, *self.pixel_shift(action))
        cam = action[:, self.camera].float()
        p0 = torch.zeros(len(frame), device=frame.device) if pitch is None else torch.nan_to_num(pitch.float(), nan=0.0)
        return rotated_pixels(frame, cam[:, 0], cam[:, 1], p0, self.fov)

    def moved(self, frame: torch.Tensor, action: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """`moved_pixels` encoded -> (B, C, h, w). Training caches this once per recorded frame
        (`LatentCache.write_pixel_prior`)."""
        return self.encode(self.moved_pixels(frame, action, pitch)).float()

    def fill_revealed(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """`moved` latents z (B, C, h, w) with the strip the camera action (B, A) reveals filled per the fill."""
        if self.fill == "edge":
            return z
        dy, dx = self.pixel_shift(action)
        inside = shift(torch.ones_like(z[:, :1]), dy / self.downsample, dx / self.downsample, "mean")
        return inside * z

    def __call__(self, frame: torch.Tensor, action: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """A recorded frame's successor's prior, as training reads it: the frame (B, H, W, 3) uint8 moved by the
        action (B, A), encoded, filled (a dream makes the same from its latent: `follow`). Decoded, it moves
        96-103 % of the real shift on held-out frames. pitch (B,): the view's before the turn (rotation)."""
        return self.fill_revealed(self.moved(frame, action, pitch), action)

    def follow(self, z: torch.Tensor, frame: torch.Tensor, action: torch.Tensor,
               pitch: torch.Tensor | None = None) -> torch.Tensor:
        """A dream's next prior: its newest latent z (B, C, h, w) plus what the move changes in latent space,
        encode(moved frame) - encode(frame), filled; frame (B, H, W, 3) uint8 is the dream's picture of z (decoded,
        with its carried detail: only the difference of the two encodings enters). On a recorded frame
        this is what `__call__` gives (z is then its encoding), but a dream's own latents never pass through the
        autoencoder again: decoding and re-encoding a frame is not the identity, and a prior made that way
        compounded it (standing still, copying such a prior brightened the picture 2.9x in 300 steps; copying
        this one keeps it as it was). Only the rows whose camera turned are encoded (the others' change is 0).
        pitch (B,): the view's pitch before the turn (the rotation geometry; NaN or None: level)."""
        dy, dx = self.pixel_shift(action)
        out = z.float().clone()
        rows = ((dy != 0) | (dx != 0)).nonzero()[:, 0]
        if len(rows):
            moved = self.moved_pixels(frame[rows], action[rows], None if pitch is None else pitch[rows])
            both = self.encode(torch.cat([moved, frame[rows]])).float()
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


def rotated_pixels(frame: torch.Tensor, dpitch: torch.Tensor, dyaw: torch.Tensor, pitch: torch.Tensor,
                   fov: float) -> torch.Tensor:
    """uint8 frames (B, H, W, 3) as the camera sees them after turning by (dpitch, dyaw) degrees (B,) from pitch
    (B,) degrees (down positive, as the game counts it): each new pixel's ray, rotated back into the old view and
    projected through the same lens (vertical field of view `fov`, square pixels), reads the old frame there
    (bilinear; a ray that leaves the old view repeats its edge). The game's view is Rx(pitch) Ry(yaw)."""
    b, h, w, _ = frame.shape
    dev = frame.device
    f = (h / 2) / math.tan(math.radians(fov) / 2)
    v, u = torch.meshgrid(torch.arange(h, device=dev) + 0.5, torch.arange(w, device=dev) + 0.5, indexing="ij")
    rays = torch.stack([(u - w / 2) / f, -(v - h / 2) / f, -torch.ones_like(u)], -1)  # OpenGL camera: -z ahead
    to_old = _rot_x(pitch) @ (_rot_x(pitch + dpitch) @ _rot_y(dyaw)).transpose(1, 2)
    d = torch.einsum("bij,hwj->bhwi", to_old, rays)
    ahead = -d[..., 2]
    depth = ahead.clamp(min=1e-6)
    gx = (f * d[..., 0] / depth + w / 2) / w * 2 - 1
    gy = (-f * d[..., 1] / depth + h / 2) / h * 2 - 1
    grid = torch.stack([gx, gy], -1).masked_fill((ahead <= 1e-6)[..., None], 2.0)  # behind the old camera
    px = F.grid_sample(frame.permute(0, 3, 1, 2).float(), grid, mode="bilinear", padding_mode="border",
                       align_corners=False)
    return px.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _rot_x(deg: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations about the x axis by deg (B,) degrees (glRotatef's sense)."""
    c, s = torch.cos(torch.deg2rad(deg.float())), torch.sin(torch.deg2rad(deg.float()))
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([one, zero, zero, zero, c, -s, zero, s, c], -1).reshape(-1, 3, 3)


def _rot_y(deg: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations about the y axis by deg (B,) degrees (glRotatef's sense)."""
    c, s = torch.cos(torch.deg2rad(deg.float())), torch.sin(torch.deg2rad(deg.float()))
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).reshape(-1, 3, 3)


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
