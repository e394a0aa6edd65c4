"""The space-time model's loss and frame generation (generation 2: `worldsim.spacetime`, `worldsim.shortcut`).

Training sees whole latent sequences (longer than the context) under shortcut forcing. A dream keeps every
finished frame's keys/values in a rolling cache (`KVCache`): a finished frame enters it corrupted to the context
level, in the same network pass as the next frame's first denoising step, so a frame costs one frame of work.

With the motion prior (`ModelConfig.motion_prior`), every frame also sees the frame before it moved in pixels by
its camera action and encoded (`MotionPrior.pixel_prior`), as extra input channels that are never noised: the
network then places what the last frame showed where the turn puts it, and fills what the turn reveals from its
long context. In training the prior is made from the recorded frame before (`LatentCache.moved`), in a dream from
the last dreamed frame's pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from worldsim import shortcut
from worldsim.spacetime import KVCache


class SpaceTimeDynamics:
    """WorldModel's training loss and frame generation for the space-time model."""

    def sequence_loss(self, z0: torch.Tensor, flat_actions: torch.Tensor, known: torch.Tensor, bootstrap_share: float,
                      rollout_share: float, context_min: float, generator: torch.Generator | None = None,
                      net: nn.Module | None = None, moved: torch.Tensor | None = None, inputs: torch.Tensor | None = None,
                      prior: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The space-time model's shortcut-forcing loss on clean latent sequences z0 (B, L, C, h, w); the actions
        leading into each frame (B, L, A) (known (B, L)). L may exceed the context: time layers look back
        `context` frames, so a long sequence trains what a long rollout meets. `net`: the trainer's wrapper.
        moved (B, L, C, h, w): each frame's recorded frame before, moved and encoded (`LatentCache.moved_seq`),
        for a model with the motion prior."""
        feats = self.action_features(flat_actions, known)
        if self.cfg.motion_prior and prior is None:
            if moved is None:
                raise ValueError("this model has the motion prior: sequence_loss needs `moved` (LatentCache.moved_seq)")
            prior = self.sequence_prior(moved, flat_actions, known)
        net = net or self.dit
        return shortcut.loss(net, z0, feats, self.cfg.dit.step_levels,
                             bootstrap_share, rollout_share, context_min, generator, prior=prior, inputs=inputs)

    def sequence_prior(self, moved: torch.Tensor, flat_actions: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Moved latents (B, L, C, h, w) -> each frame's motion prior: the revealed strip filled (`fill_revealed`),
        zero where no action led into the frame (an episode's first frame: no frame before it)."""
        b, n = moved.shape[:2]
        p = self.fill_revealed(moved.reshape(b * n, *moved.shape[2:]).float(), flat_actions.reshape(b * n, -1))
        return p.reshape(moved.shape) * known.float()[..., None, None, None]

    def _with_prior(self, x: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """The network's input: frames x (B, F, C, h, w) and, for a model with the motion prior, their priors."""
        if not self.cfg.motion_prior:
            return x
        if prior is None:
            raise ValueError("this model has the motion prior: pass each frame's prior (WorldModel.pixel_prior)")
        return torch.cat([x, prior.to(x.dtype)], dim=2)

    def _as_context(self, z: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Finished frames z (B, F, C, h, w) as a dream's context is fed: corrupted to signal 1 - context_noise with
        noise eps, at the smallest step size. Returns the input (in the network's dtype), levels and step indices."""
        level = torch.full(z.shape[:2], 1 - self.cfg.sampler.context_noise, device=z.device)
        step = torch.full(z.shape[:2], self.cfg.dit.step_levels, dtype=torch.long, device=z.device)
        x = shortcut.mix(z.float(), eps.float(), level).to(next(self.dit.parameters()).dtype)
        return x, level, step

    def commit(self, z: torch.Tensor, eps: torch.Tensor, feats: torch.Tensor, times: torch.Tensor, cache: KVCache,
               prior: torch.Tensor | None = None) -> None:
        """Put finished frames z (B, F, C, h, w) into a space-time model's cache, corrupted as a dream's context is
        (`_as_context`, noise eps), with the features (B, F, A+1) of the actions that led into them (and their
        motion priors (B, F, C, h, w), for a model with one)."""
        x, level, step = self._as_context(z, eps)
        with self.autocast():
            self.dit(self._with_prior(x, prior), level, step, feats.to(x.dtype), times, cache, write=z.shape[1])

    def generate(self, pending: torch.Tensor, pending_eps: torch.Tensor, pending_feats: torch.Tensor, noise: torch.Tensor,
                 feats: torch.Tensor, time: torch.Tensor, cache: KVCache, steps: int,
                 pending_prior: torch.Tensor | None = None, prior: torch.Tensor | None = None) -> torch.Tensor:
        """The space-time model's next latent frame (B, C, h, w) for a batch of dreams: `pending` (B, C, h, w), the
        newest finished frame at time stamps `time` (B,), enters the cache in the first denoising step (with its
        action features, its motion prior and context noise); then `steps` shortcut steps from `noise` under the
        new action features (and the new frame's motion prior (B, C, h, w))."""
        x_ctx, l_ctx, s_ctx = self._as_context(pending[:, None], pending_eps[:, None])
        dtype = x_ctx.dtype
        x_ctx = self._with_prior(x_ctx, None if pending_prior is None else pending_prior[:, None])
        new_prior = None if prior is None else prior[:, None]
        first = [True]

        def predict(z: torch.Tensor, level: torch.Tensor, i: int) -> torch.Tensor:
            step = torch.full_like(time, i)
            z = self._with_prior(z[:, None].to(dtype), new_prior)
            with self.autocast():
                if first[0]:  # the pending frame and the new one in one pass; the pending frame is written
                    first[0] = False
                    out = self.dit(torch.cat([x_ctx, z], 1), torch.cat([l_ctx, level[:, None]], 1),
                                   torch.cat([s_ctx, step[:, None]], 1), torch.stack([pending_feats, feats], 1).to(dtype),
                                   torch.stack([time, time + 1], 1), cache, write=1)
                    return out[:, 1].float()
                return self.dit(z, level[:, None], step[:, None], feats[:, None].to(dtype),
                                (time + 1)[:, None], cache)[:, 0].float()

        return shortcut.sample(predict, noise, steps, self.cfg.dit.step_levels)
