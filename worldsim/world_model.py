"""The world model: autoencoder + dynamics transformer + the glue that turns actions and frames into tensors.

Generic over any Dict action space of Discrete/Box entries: actions are flattened by `ActionCodec` (documented
layout), Box entries (the camera) pass through a signed log, sign(x) * log1p(|x|), so a 0.15 degree turn and a
30 degree turn both stay distinct numbers, never binned. A trailing flag says whether an action is known at all
(the first frame of a window has no action leading into it).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.spaces import Box
from torch import nn

from worldsim import diffusion
from worldsim.actions import ActionCodec, space_from_json
from worldsim.autoencoder import Autoencoder, to_pixels, to_uint8
from worldsim.config import ModelConfig
from worldsim.dit import DiT
from worldsim.heads import OutcomeHeads


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.action_space_json:
            raise ValueError("ModelConfig.action_space_json is empty: the model must know its action space")
        self.cfg = cfg
        self.codec = ActionCodec(space_from_json(cfg.action_space_json))
        box = torch.zeros(self.codec.dim, dtype=torch.bool)
        for key, sub in self.codec.space.spaces.items():
            if isinstance(sub, Box):
                box[self.codec.slices[key]] = True
        self.register_buffer("box_mask", box, persistent=False)
        self.ae = Autoencoder(cfg.ae)
        lh, lw = cfg.latent_hw
        self.dit = DiT(cfg.dit, cfg.ae.latent_channels, (lh, lw), cfg.context + 1, self.codec.dim + 1)
        c = cfg.ae.latent_channels
        self.heads = OutcomeHeads(c, self.codec.dim + 1)
        self.register_buffer("heads_trained", torch.zeros((), dtype=torch.bool))  # set once the heads phase ran
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))

    @property
    def context(self) -> int:
        return self.cfg.context

    # ----- frames <-> standardised latents -----
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> standardised latents (..., C, h, w)."""
        lead = frames.shape[:-3]
        x = to_pixels(frames.reshape(-1, *frames.shape[-3:]).to(self.latent_mean.device))
        z = self.ae.encode(x.to(self._dtype()))
        z = (z.float() - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """standardised latents (..., C, h, w) -> uint8 frames (..., H, W, 3)."""
        lead = z.shape[:-3]
        z = z.reshape(-1, *z.shape[-3:]).float() * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return to_uint8(self.ae.decode(z.to(self._dtype()))).reshape(*lead, *self.cfg.frame_hw, 3)

    def _dtype(self) -> torch.dtype:
        return self.latent_mean.dtype if self.latent_mean.is_floating_point() else torch.float32

    # ----- actions -----
    def action_features(self, flat: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Flat action vectors (..., A) -> network input (..., A + 1)."""
        flat = flat.float()
        flat = torch.where(self.box_mask, torch.sign(flat) * torch.log1p(flat.abs()), flat)
        if known is None:
            known = torch.ones(flat.shape[:-1], device=flat.device)
        return torch.cat([flat * known[..., None], known[..., None].float()], dim=-1)

    def flat_actions(self, actions: list[dict]) -> torch.Tensor:
        """A list of action dicts -> (N, A) float tensor (validated)."""
        vecs = np.stack([self.codec.encode(self.codec.validate(a)) for a in actions]) if actions else np.zeros((0, self.codec.dim), np.float32)
        return torch.from_numpy(vecs).to(self.latent_mean.device)

    # ----- training -----
    def dynamics_loss(self, z0: torch.Tensor, flat_actions: torch.Tensor, known: torch.Tensor, ctx_aug_prob: float,
                      ctx_aug_max: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """z0: (B, K+1, C, h, w) clean latents; flat_actions (B, K+1, A): action leading into each frame."""
        return diffusion.loss(self.dit, z0, self.action_features(flat_actions, known), ctx_aug_prob, ctx_aug_max, generator)

    @torch.no_grad()
    def outcome(self, z_prev: torch.Tensor, z_next: torch.Tensor, flat_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted reward (B,) and termination (B,) of the transition z_prev -> z_next under the action;
        zeros / False when this model's heads were never trained."""
        b = z_prev.shape[0]
        if not bool(self.heads_trained):
            return torch.zeros(b, device=z_prev.device), torch.zeros(b, dtype=torch.bool, device=z_prev.device)
        return self.heads.predict(z_prev.float(), z_next.float(), self.action_features(flat_action))

    # ----- rollout -----
    def draw_noise(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The randomness of one generated frame: context-augmentation noise and the sampler's starting noise."""
        c = self.cfg.ae.latent_channels
        h, w = self.cfg.latent_hw
        dev = self.latent_mean.device
        ctx = torch.randn((batch, self.context, c, h, w), generator=generator, device=dev)
        start = torch.randn((batch, c, h, w), generator=generator, device=dev)
        return ctx, start

    @torch.no_grad()
    def predict_next(self, context: torch.Tensor, context_actions: torch.Tensor, context_known: torch.Tensor,
                     action: torch.Tensor, steps: int | None = None, generator: torch.Generator | None = None,
                     noise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The next latent frame for a batch of dreams.

        context: (B, K, C, h, w) standardised latents of the last K frames; context_actions (B, K, A) the action
        that led into each of them (context_known (B, K) marks which are known); action (B, A) the action taken at
        the last context frame. Costs K frames once (context keys/values) plus one frame per sampling step.
        """
        sc = self.cfg.sampler
        steps = steps or sc.steps
        b, k = context.shape[:2]
        dtype = next(self.dit.parameters()).dtype
        eps, start = noise if noise is not None else self.draw_noise(b, generator)
        s_ctx = torch.full((b, k), sc.context_noise, device=context.device)
        noisy_ctx = diffusion.add_noise(context.float(), s_ctx, eps).to(dtype)
        cache = self.dit.context_cache(noisy_ctx, s_ctx, self.action_features(context_actions, context_known).to(dtype))
        a_new = self.action_features(action).to(dtype)
        return diffusion.sample(lambda z, s: self.dit.forward_new(z, s, a_new, cache), start, steps, sc.shift).float()
