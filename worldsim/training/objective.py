"""The dynamics model's training objective on latent sequences: shortcut forcing (`worldsim.model.shortcut`),
with each frame's motion prior, and self forcing (the model's own dream as the past it must continue from)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from worldsim.model import shortcut
from worldsim.model.world_model import WorldModel
from worldsim.sampling.sampler import Sampler


def sequence_loss(model: WorldModel, z: torch.Tensor, flat: torch.Tensor, known: torch.Tensor, bootstrap_share: float,
                  rollout_share: float, context_min: float, generator: torch.Generator | None = None,
                  net: nn.Module | None = None, moved: torch.Tensor | None = None, inputs: torch.Tensor | None = None,
                  prior: torch.Tensor | None = None, prior_noise: float = 0.0,
                  weight: torch.Tensor | None = None, prior_flat: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """Shortcut-forcing loss on clean latent sequences z (B, L, C, h, w) under the actions leading into each frame
    (B, L, A) (known (B, L)). L may exceed the context: time layers look back `context` frames, so a long
    sequence trains what a long dream meets. net: the trainer's wrapper of `model.dit`. moved (B, L, C, h, w):
    each frame's recorded frame before, moved and encoded (`LatentCache.moved_seq`), for a model with the motion
    prior; or `prior` made already. inputs: what is noised instead of z (self forcing), z staying the target.
    prior_flat: the actions that moved `moved` where they are not `flat` (`LatentCache.prior_actions`)."""
    feats = model.codec.features(flat, known)
    if model.prior is not None and prior is None:
        if moved is None:
            raise ValueError("this model has the motion prior: sequence_loss needs `moved` (LatentCache.moved_seq)")
        prior = model.prior.sequence(moved, flat if prior_flat is None else prior_flat, known)
    if prior is not None and prior_noise > 0:
        level = prior_noise * torch.rand(prior.shape[:2], generator=generator, device=prior.device)
        prior = noised_prior(prior, level, known, generator)
    return shortcut.loss(net or model.dit, z, feats, model.cfg.dit.step_levels, bootstrap_share, rollout_share,
                         context_min, generator, prior=prior, inputs=inputs, weight=weight)


def noised_prior(prior: torch.Tensor, level: torch.Tensor, known: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Motion priors (B, L, C, h, w) noised at levels (B, L) (0: clean) as a frame is noised to signal 1 - level
    (`shortcut.mix`). A frame with no frame before it (known 0) keeps its zero prior."""
    eps = torch.randn(prior.shape, generator=generator, device=prior.device, dtype=prior.dtype)
    return shortcut.mix(prior, eps, 1 - level).to(prior.dtype) * known.to(prior.dtype)[..., None, None, None]


@torch.no_grad()
def own_dream(model: WorldModel, z: torch.Tensor, flat: torch.Tensor, known: torch.Tensor, moved: torch.Tensor | None,
              rng: np.random.Generator, precision: str, frames: int, after: int = 0, steps: int | None = None,
              prior_flat: torch.Tensor | None = None, pitch: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Self forcing: the model dreams `frames` frames of real sequences z (B, L, ...) from the real ones before
    them, under the recorded actions, exactly as a dream does (its sampler, its context noise, the motion prior
    made from its own last frame); the sequence's last `after` frames stay real. Returns the network inputs, every
    frame's motion prior (the first real frame after the dream gets the one the dream makes) and the loss weight
    per frame (B, L). The loss targets the real frames, so the model learns to continue a drifting past toward the
    game instead of compounding its own one-step error (the exposure bias of teacher forcing). Few frames: a
    longer dream leaves the real frames. With `after` > 0 the dreamed frames are only a past (weight 0): their
    own target, the real frame the dream has already left, is a regression toward a mean that blurs. steps: the
    shortcut steps per dreamed frame (None: the sampler's default). prior_flat: the actions that moved `moved`
    where they are not `flat` (the real frames' priors; a dream moves its own by the action). pitch (B, L): the
    view's pitch at each real frame (`LatentCache.view_pitch`; None: unknown), which the dream starts from."""
    first = z.shape[1] - frames - after
    if frames < 1 or after < 0 or not 1 <= first <= model.cfg.context:
        raise ValueError(f"self forcing dreams 1 to {z.shape[1] - 1 - after} frames of a {z.shape[1]}-frame sequence "
                         f"from at most {model.cfg.context} real ones, got {frames} ({after} real after them)")
    was_training, was_precision = model.training, model.precision
    model.eval().set_precision(precision)
    try:
        sampler = Sampler(model, model.decode(z[:, :first]), flat[:, 1:first], steps=steps,
                          seeds=[int(x) for x in rng.integers(0, 2**31 - 1, len(z))],
                          pitch=None if pitch is None else pitch[:, first - 1].cpu().numpy())
        out = z.clone()
        priors = None if moved is None else model.prior.sequence(moved, flat if prior_flat is None else prior_flat, known)
        for t in range(first, first + frames):
            sampler.step(flat[:, t])
            out[:, t] = sampler.pending
            if priors is not None:
                priors[:, t] = sampler.pending_prior
        t = first + frames
        if priors is not None and after:
            priors[:, t] = model.prior.follow(sampler.pending, sampler.last_frame, flat[:, t],
                                              sampler.pitch) * known[:, t, None, None, None]
    finally:
        model.set_precision(was_precision)
        model.train(was_training)
    weight = torch.ones(z.shape[:2], device=z.device)
    if after:
        weight[:, first:first + frames] = 0.0
    return out, priors, weight
