"""The first model's dynamics objective and sampler (generation 1: `worldsim.dit`, `worldsim.diffusion`).

Each new frame is denoised from a window of the last K frames recomputed for it, by velocity prediction in 1-3
Euler steps, optionally with the motion prior as an extra input and key guidance on the first step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from worldsim import diffusion

if TYPE_CHECKING:
    from worldsim.world_model import WorldModel


class FirstDynamics:
    """WorldModel's training loss and next-frame sampler for the first model."""

    def set_key_guidance(self, g: float) -> WorldModel:
        """The key guidance this model samples with by default (0: off; see `_released_velocity`)."""
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g < float("inf"):
            raise ValueError(f"key_guidance must be a number >= 0 (0: off), got {g!r}")
        self.cfg.sampler.key_guidance = float(g)
        return self

    def dynamics_loss(self, z0: torch.Tensor, flat_actions: torch.Tensor, known: torch.Tensor, ctx_aug_prob: float,
                      ctx_aug_max: float, generator: torch.Generator | None = None, net: nn.Module | None = None,
                      sampler_level_prob: float = 0.0, pitch: torch.Tensor | None = None,
                      pitch_drop: float = 0.0, moved: torch.Tensor | None = None) -> torch.Tensor:
        """z0: (B, K+1, C, h, w) clean latents; flat_actions (B, K+1, A): action leading into each frame; `net`:
        the dynamics transformer to call (default self.dit; the trainer passes its DDP / compiled wrapper);
        `sampler_level_prob`: share of rollout-regime targets noised to a level a 1-3 step sampler uses;
        `pitch` (B, K+1): each frame's view pitch in degrees (NaN: unknown), hidden for a share `pitch_drop` of
        the windows. The motion prior is taken from the noisy frames the network sees, as at rollout time.
        `moved` (B, C, h, w): the frame before the last moved in pixels and encoded (`moved_latents`); given, the
        last frame's prior is the pixel prior noised as the frame before it, as a rollout with
        `SamplerConfig.pixel_prior` makes it (the context frames keep the latent prior there too)."""
        if pitch is not None and pitch_drop > 0:
            hide = torch.rand(pitch.shape[0], generator=generator, device=pitch.device) < pitch_drop
            pitch = torch.where(hide[:, None], torch.full_like(pitch, float("nan")), pitch)
        prior = None
        if self.cfg.motion_prior:
            def prior(zs: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
                p = self.motion_prior(zs, flat_actions, pitch)
                if moved is None:
                    return p
                # as predict_next: the pixel prior at the level and with the noise of the frame before it
                pixel = self.fill_revealed(moved.float(), flat_actions[:, -1], None if pitch is None else pitch[:, -1])
                last = diffusion.add_noise(pixel[:, None], s[:, -2:-1], eps[:, -2:-1].float())
                return torch.cat([p[:, :-1], last.to(p.dtype)], dim=1)
        cond = self.frame_features(flat_actions, known, pitch)
        return diffusion.loss(net or self.dit, z0, cond, ctx_aug_prob, ctx_aug_max,
                              generator, prior=prior, sampler_levels=diffusion.sampler_levels(self.cfg.sampler.shift),
                              sampler_level_prob=sampler_level_prob)

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
                     noise: tuple[torch.Tensor, torch.Tensor] | None = None,
                     context_pitch: torch.Tensor | None = None, key_guidance: float | None = None,
                     last_frame: torch.Tensor | None = None) -> torch.Tensor:
        """The next latent frame for a batch of dreams.

        context: (B, K, C, h, w) standardised latents of the last K frames; context_actions (B, K, A) the action
        that led into each of them (context_known (B, K) marks which are known); action (B, A) the action taken at
        the last context frame; context_pitch (B, K): the view's pitch at each context frame in degrees (NaN or
        None: unknown; the new frame's follows from the action, `pitch_after`); last_frame (B, H, W, 3) uint8: the
        last context frame's pixels, for the sampler's `pixel_prior` (None: decoded from the context).
        Costs K + 1 frames for the first sampling step (the context's keys/values are kept) and one frame for each
        further step; key guidance (`key_guidance`, default the sampler config's) one more frame, for the dreams
        that press a key; the pixel prior one encoder pass.
        """
        sc = self.cfg.sampler
        steps = steps or sc.steps
        g = sc.key_guidance if key_guidance is None else key_guidance
        b, k = context.shape[:2]
        dtype = next(self.dit.parameters()).dtype
        eps, start = noise if noise is not None else self.draw_noise(b, generator)
        s_ctx = torch.full((b, k), sc.context_noise, device=context.device)
        noisy_ctx = diffusion.add_noise(context.float(), s_ctx, eps)
        p_ctx = context_pitch.float() if context_pitch is not None else torch.full((b, k), float("nan"), device=context.device)
        p_new = self.pitch_after(p_ctx[:, -1], action)
        prior_new = None
        if self.cfg.motion_prior:  # the new frame's prior is the last context frame moved by the new camera action
            prior = self.motion_prior(torch.cat([noisy_ctx, noisy_ctx[:, -1:]], dim=1),
                                      torch.cat([context_actions, action[:, None]], dim=1),
                                      torch.cat([p_ctx, p_new[:, None]], dim=1))
            noisy_ctx, prior_new = torch.cat([noisy_ctx, prior[:, :k]], dim=2), prior[:, k]
            if sc.pixel_prior:  # the new frame's prior made in pixel space, given the last context frame's noise
                px = self.decode(context[:, -1]) if last_frame is None else last_frame
                prior_new = diffusion.add_noise(self.pixel_prior(px, action, p_new)[:, None], s_ctx[:, -1:], eps[:, -1:])[:, 0]
        noisy_ctx = noisy_ctx.to(dtype)
        a_ctx = self.frame_features(context_actions, context_known, p_ctx).to(dtype)
        a_new = self.frame_features(action, None, p_new).to(dtype)
        released = guided = None
        if g:  # the reference action keeps the camera: same prior and pitch
            released = torch.where(self.key_mask, self.key_noop, action.float())
            guided = (released != action.float()).any(dim=-1).nonzero()[:, 0]
        cache: list = []

        def velocity(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            z = (z if prior_new is None else torch.cat([z, prior_new], dim=1)).to(dtype)
            with self.autocast():
                if cache:
                    return self.dit.forward_new(z, s, a_new, cache).float()
                # first step: context and new frame in one pass, keeping the context's keys/values
                v, kv = self.dit.first_step(noisy_ctx, s_ctx, a_ctx, z, s, a_new)
                cache.extend(kv)
                v = v.float()
                if guided is not None and len(guided):
                    v[guided] += g * (v[guided] - self._released_velocity(z, s, released, p_new, cache, guided, dtype))
                return v

        level = None
        if sc.prior_start and prior_new is not None:
            # warm start (as SDEdit does): a turning frame begins as its prior noised to prior_start, so the
            # sampler keeps the prior's shift instead of pulling the picture back toward the unmoved frame
            turning = action[:, self.camera].float().abs().sum(-1) > 0
            level = torch.where(turning, sc.prior_start, 1.0).to(start.device)
            start = diffusion.add_noise(prior_new.float()[:, None], level[:, None], start.float()[:, None])[:, 0]
        return diffusion.sample(velocity, start, steps, sc.shift, level).float()

    def _released_velocity(self, z: torch.Tensor, s: torch.Tensor, released: torch.Tensor, pitch: torch.Tensor,
                           cache: list, rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Key guidance's reference: the first step's velocity for `rows` of the batch had they released every key.

        Why guidance, and why only the keys and only the first step: the model renders what a key does (a broken
        block, a step forward) fainter than the game, because its prediction is a mean over futures. Moving the
        velocity g times further from the keys-released one sharpens exactly the keys' effect (as classifier-free
        guidance does, with "released" in place of "unconditional": an action the model was trained on). Guiding
        the camera too made the dream invent walls where a turn should reveal the horizon, and guiding the later,
        detail-level steps added nothing the first step's did not (measured on held-out clips; see the README).
        """
        every = len(rows) == len(z)
        kv = cache if every else [(k[rows], v[rows]) for k, v in cache]
        feats = self.frame_features(released[rows], None, pitch[rows]).to(dtype)
        return self.dit.forward_new(z if every else z[rows], s if every else s[rows], feats, kv).float()
