"""The space-time model's loss and frame generation (generation 2: `worldsim.spacetime`, `worldsim.shortcut`).

Training sees whole latent sequences (longer than the context) under shortcut forcing. A dream keeps every
finished frame's keys/values in a rolling cache (`KVCache`): a finished frame enters it corrupted to the context
level, in the same network pass as the next frame's first denoising step, so a frame costs one frame of work.
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
                      net: nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """The space-time model's shortcut-forcing loss on clean latent sequences z0 (B, L, C, h, w); the actions
        leading into each frame (B, L, A) (known (B, L)). L may exceed the context: time layers look back
        `context` frames, so a long sequence trains what a long rollout meets. `net`: the trainer's wrapper."""
        feats = self.action_features(flat_actions, known)
        net = net or self.dit
        return shortcut.loss(net, z0, feats, self.cfg.dit.step_levels,
                             bootstrap_share, rollout_share, context_min, generator)

    def _as_context(self, z: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Finished frames z (B, F, C, h, w) as a dream's context is fed: corrupted to signal 1 - context_noise with
        noise eps, at the smallest step size. Returns the input (in the network's dtype), levels and step indices."""
        level = torch.full(z.shape[:2], 1 - self.cfg.sampler.context_noise, device=z.device)
        step = torch.full(z.shape[:2], self.cfg.dit.step_levels, dtype=torch.long, device=z.device)
        x = shortcut.mix(z.float(), eps.float(), level).to(next(self.dit.parameters()).dtype)
        return x, level, step

    def commit(self, z: torch.Tensor, eps: torch.Tensor, feats: torch.Tensor, times: torch.Tensor, cache: KVCache) -> None:
        """Put finished frames z (B, F, C, h, w) into a space-time model's cache, corrupted as a dream's context is
        (`_as_context`, noise eps), with the features (B, F, A+1) of the actions that led into them."""
        x, level, step = self._as_context(z, eps)
        with self.autocast():
            self.dit(x, level, step, feats.to(x.dtype), times, cache, write=z.shape[1])

    def generate(self, pending: torch.Tensor, pending_eps: torch.Tensor, pending_feats: torch.Tensor, noise: torch.Tensor,
                 feats: torch.Tensor, time: torch.Tensor, cache: KVCache, steps: int) -> torch.Tensor:
        """The space-time model's next latent frame (B, C, h, w) for a batch of dreams: `pending` (B, C, h, w), the
        newest finished frame at time stamps `time` (B,), enters the cache in the first denoising step (with its
        action features and context noise); then `steps` shortcut steps from `noise` under the new action features."""
        x_ctx, l_ctx, s_ctx = self._as_context(pending[:, None], pending_eps[:, None])
        dtype = x_ctx.dtype
        first = [True]

        def predict(z: torch.Tensor, level: torch.Tensor, i: int) -> torch.Tensor:
            step = torch.full_like(time, i)
            with self.autocast():
                if first[0]:  # the pending frame and the new one in one pass; the pending frame is written
                    first[0] = False
                    out = self.dit(torch.cat([x_ctx, z[:, None].to(dtype)], 1), torch.cat([l_ctx, level[:, None]], 1),
                                   torch.cat([s_ctx, step[:, None]], 1), torch.stack([pending_feats, feats], 1).to(dtype),
                                   torch.stack([time, time + 1], 1), cache, write=1)
                    return out[:, 1].float()
                return self.dit(z[:, None].to(dtype), level[:, None], step[:, None], feats[:, None].to(dtype),
                                (time + 1)[:, None], cache)[:, 0].float()

        return shortcut.sample(predict, noise, steps, self.cfg.dit.step_levels)
