"""The view atlas: what the training data shows, row by row, at each pitch of the camera.

A camera move reveals a strip the previous frame never showed. The motion prior (`worldsim.world_model`) has to
put something there: repeating the edge made a dream that looked down stay all ground when it looked back up, and
the mean latent says "unknown", which leaves the model to guess from 4 frames of context, all ground by then. But
the pitch says a lot about that strip: at level view the top rows are sky, looking down they are ground. The atlas
is the mean standardised latent of each latent row over the training frames whose view pitch falls in each 5 degree
bin (averaged over columns: yaw says nothing about a row), so the prior can fill the revealed strip with what is
usually there at that pitch (`ModelConfig.prior_fill = "view"`). It is measured from the data, like the pixels per
degree of the prior itself, and costs one small table (37 bins x C x h) in the checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch

BIN_DEG = 5.0
BINS = int(180 / BIN_DEG) + 1  # bin centres -90, -85, ..., 90 degrees


def build(latents: np.ndarray, pitch: np.ndarray, max_frames: int = 40000, seed: int = 0) -> torch.Tensor:
    """(BINS, C, h) mean latent per row and pitch bin from standardised latents (N, C, h, w) and their view pitch
    (N,) in degrees (NaN: unknown, skipped). Bins the data never reached copy the nearest bin that it did."""
    known = np.flatnonzero(np.isfinite(pitch))
    if len(known) == 0:
        raise ValueError("the view atlas needs frames with a known view pitch; these have none (no recorded poses)")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(known, min(max_frames, len(known)), replace=False))
    c, h = latents.shape[1], latents.shape[2]
    total = np.zeros((BINS, c, h), np.float64)
    count = np.zeros(BINS, np.int64)
    for i in range(0, len(pick), 4096):
        idx = pick[i:i + 4096]
        rows = np.asarray(latents[idx], np.float32).mean(axis=-1)  # (n, C, h)
        b = np.clip(np.rint((np.asarray(pitch[idx], np.float64) + 90.0) / BIN_DEG), 0, BINS - 1).astype(int)
        np.add.at(total, b, rows)
        np.add.at(count, b, 1)
    seen = np.flatnonzero(count)
    atlas = total[seen] / count[seen, None, None]
    nearest = seen[np.abs(np.arange(BINS)[:, None] - seen[None]).argmin(1)]  # each bin -> the nearest seen bin
    return torch.from_numpy(atlas[np.searchsorted(seen, nearest)].astype(np.float32))


def rows(atlas: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """The atlas at view pitches (N,) in degrees, interpolated between bins -> (N, C, h); zeros (the mean latent:
    unknown) where the pitch is NaN."""
    known = torch.isfinite(pitch)
    u = ((torch.nan_to_num(pitch.float(), nan=0.0) + 90.0) / BIN_DEG).clamp(0, BINS - 1)
    lo = u.floor().long().clamp(max=BINS - 2)
    frac = (u - lo.float())[:, None, None]
    out = atlas[lo] * (1 - frac) + atlas[lo + 1] * frac
    return out * known[:, None, None].to(out.dtype)


@torch.no_grad()
def from_dataset(model, ds, max_frames: int = 20000, seed: int = 0, batch: int = 256) -> torch.Tensor:
    """The atlas of a model's latent space over a dataset's frames that have recorded poses (evenly spread over
    the episodes; each frame encoded by the model's autoencoder)."""
    per = max(1, max_frames // max(1, len(ds)))
    lat, pitch = [], []
    for e in range(len(ds)):
        ep = ds.episode(e)
        p = ep.view_pitch()
        if not np.isfinite(p).any():
            continue
        idx = np.linspace(0, len(ep.frames) - 1, min(per, len(ep.frames))).astype(int)
        for i in range(0, len(idx), batch):
            lat.append(model.encode(torch.from_numpy(np.array(ep.frames[idx[i:i + batch]]))).cpu().numpy())
        pitch.append(p[idx])
    if not lat:
        raise ValueError(f"dataset {ds.root} records no poses: the view atlas needs each frame's view pitch")
    pitch_all = np.concatenate(pitch)
    return build(np.concatenate(lat), pitch_all, max_frames=len(pitch_all), seed=seed)
