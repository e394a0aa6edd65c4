"""The world model: autoencoder + dynamics transformer + the glue that turns actions and frames into tensors.

Generic over any Dict action space of Discrete/Box entries: actions are flattened by `ActionCodec` (documented
layout), Box entries (the camera) pass through a signed log, sign(x) * log1p(|x|), so a 0.15 degree turn and a
30 degree turn both stay distinct numbers, never binned. A trailing flag says whether an action is known at all
(the first frame of a window has no action leading into it).

The motion prior (`ModelConfig.motion_prior`): a camera turn moves the whole picture by a nearly constant number
of pixels per degree, an exact, cheap piece of geometry that a transformer over 16x16-pixel patches learns only
slowly (a 2 degree turn is a 1.4 pixel shift). So next to every noisy frame the network also sees the frame
before it shifted by that frame's camera action (bilinear, edges repeated); it predicts what the shift does not
explain: parallax, the strip the turn reveals, walking, breaking. The pixels per degree are measured from the
training data (`worldsim.motion`), so the prior knows no more than the recorded frames and actions.

The view's pitch (`ModelConfig.view_pitch`): where the data reports the camera's absolute pitch, every frame is
also conditioned on it (sines and cosines of the angle, and a flag saying whether it is known). Frames cannot tell
"looking at the ground" from "standing on a plain"; without the pitch a long dream that has looked down for a
while forgets where the horizon is. In a dream the pitch is summed from the camera actions and clamped at
+-`pitch_limit`, as the game does (`pitch_after`).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.spaces import Box
from torch import nn

from worldsim import diffusion, shortcut, view_atlas
from worldsim.actions import ActionCodec, space_from_json
from worldsim.autoencoder import Autoencoder, to_pixels, to_uint8
from worldsim.config import ModelConfig
from worldsim.dit import DiT
from worldsim.heads import OutcomeHeads
from worldsim.spacetime import KVCache, SpaceTimeTransformer


@functools.cache
def bf16_is_fast(device_type: str) -> bool:
    """bf16 pays off on GPUs that support it and on CPUs with native bf16 dot products (AVX512-BF16/AMX): on a
    2-core Zen 4 it cuts a 64x64 frame from ~38 ms to ~22 ms. Elsewhere CPUs emulate it, slower than fp32."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.precision = "fp32"  # inference numerics; see set_precision
        if not cfg.action_space_json:
            raise ValueError("ModelConfig.action_space_json is empty: the model must know its action space")
        if cfg.prior_fill not in PRIOR_FILLS:
            raise ValueError(f"ModelConfig.prior_fill must be one of {sorted(PRIOR_FILLS)}, got {cfg.prior_fill!r}")
        self.cfg = cfg
        self.codec = ActionCodec(space_from_json(cfg.action_space_json))
        box = torch.zeros(self.codec.dim, dtype=torch.bool)
        for key, sub in self.codec.space.spaces.items():
            if isinstance(sub, Box):
                box[self.codec.slices[key]] = True
        self.register_buffer("box_mask", box, persistent=False)
        self.camera = self.codec.slices.get("camera") if cfg.motion_prior else None
        # key guidance's reference action: every Discrete key released (its no-op value), Box parts (camera) kept
        self.register_buffer("key_mask", ~box, persistent=False)
        self.register_buffer("key_noop", torch.from_numpy(self.codec.encode(self.codec.noop())), persistent=False)
        if cfg.motion_prior and (self.camera is None or self.camera.stop - self.camera.start != 2):
            raise ValueError("ModelConfig.motion_prior needs a 'camera' Box of shape (2,) in the action space")
        self.ae = Autoencoder(cfg.ae)
        lh, lw = cfg.latent_hw
        if cfg.generation == 2:
            self._check_generation_2(cfg)
            self.dit = SpaceTimeTransformer(cfg.dit, cfg.ae.latent_channels, (lh, lw), cfg.context, self.codec.dim + 1)
        elif cfg.generation == 1:
            c_in = cfg.ae.latent_channels * (2 if cfg.motion_prior else 1)
            cond_dim = self.codec.dim + 1 + (PITCH_FEATURES if cfg.view_pitch else 0)
            self.dit = DiT(cfg.dit, cfg.ae.latent_channels, (lh, lw), cfg.context + 1, cond_dim, in_channels=c_in)
        else:
            raise ValueError(f"ModelConfig.generation must be 1 or 2, got {cfg.generation!r}")
        c = cfg.ae.latent_channels
        self.heads = OutcomeHeads(c, self.codec.dim + 1)
        self.register_buffer("heads_trained", torch.zeros((), dtype=torch.bool))  # set once the heads phase ran
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))
        if cfg.prior_fill == "view":  # measured from the training data (worldsim.view_atlas), saved with the weights
            self.register_buffer("view_atlas", torch.zeros(view_atlas.BINS, c, lh))

    @staticmethod
    def _check_generation_2(cfg: ModelConfig) -> None:
        """The space-time model earns its frames from its context alone: none of the first model's priors."""
        sc = cfg.sampler
        used = [name for name, on in (("motion_prior", cfg.motion_prior), ("view_pitch", cfg.view_pitch),
                                      ("sampler.key_guidance", sc.key_guidance), ("sampler.pixel_prior", sc.pixel_prior),
                                      ("sampler.prior_start", sc.prior_start)) if on]
        if used:
            raise ValueError(f"ModelConfig.generation 2 does not use {', '.join(used)}: turn them off")
        shortcut.step_index(sc.steps, cfg.dit.step_levels)  # a power of two the shortcut steps reach
        if not 0 < sc.context_noise < 1:
            raise ValueError(f"SamplerConfig.context_noise must lie in (0, 1) for generation 2, got {sc.context_noise}")

    @property
    def start_frames(self) -> int:
        """How many real frames a dream starts from: the whole context for the first model; for the space-time
        model `ModelConfig.start_frames` (its cache fills as the dream goes on)."""
        return self.cfg.context if self.cfg.generation == 1 else min(self.cfg.start_frames, self.cfg.context)

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

    def set_key_guidance(self, g: float) -> WorldModel:
        """The key guidance this model samples with by default (0: off; see `_released_velocity`)."""
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g < float("inf"):
            raise ValueError(f"key_guidance must be a number >= 0 (0: off), got {g!r}")
        self.cfg.sampler.key_guidance = float(g)
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
    def context(self) -> int:
        return self.cfg.context

    @property
    def trains_on_pixel_prior(self) -> bool:
        """Whether training gives the new frame the pixel-space prior (a latent cache with moved.f16): a model trains
        on the prior its sampler makes."""
        return self.cfg.motion_prior and self.cfg.sampler.pixel_prior

    def set_precision(self, precision: str) -> WorldModel:
        """Inference numerics: "fp32", "bf16" (autocast; the model is trained under bf16 autocast) or "auto"
        (bf16 where the hardware runs it natively). Weights stay fp32."""
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
        if precision == "auto":
            precision = "bf16" if bf16_is_fast(self.latent_mean.device.type) else "fp32"
        self.precision = precision
        return self

    def autocast(self):
        """The autocast context of this model's inference precision."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.latent_mean.device.type, dtype=torch.bfloat16)

    # ----- frames <-> standardised latents -----
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> standardised latents (..., C, h, w)."""
        lead = frames.shape[:-3]
        x = to_pixels(frames.reshape(-1, *frames.shape[-3:]).to(self.latent_mean.device))
        with self.autocast():
            z = self.ae.encode(x.to(self._dtype()))
        z = (z.float() - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """standardised latents (..., C, h, w) -> uint8 frames (..., H, W, 3)."""
        lead = z.shape[:-3]
        z = z.reshape(-1, *z.shape[-3:]).float() * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        with self.autocast():
            x = self.ae.decode(z.to(self._dtype()))
        return to_uint8(x.float()).reshape(*lead, *self.cfg.frame_hw, 3)

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

    # ----- the motion prior -----
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

    def _camera_px(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (down, right) pixel shift (B,), (B,) of the flat actions' (B, A) camera turn."""
        cam = action[:, self.camera].float()
        return cam[:, 0] * self.cfg.camera_px_per_deg[0], cam[:, 1] * self.cfg.camera_px_per_deg[1]

    def _view_rows(self, pitch: torch.Tensor | None, n: int) -> torch.Tensor:
        """The view atlas's rows (n, C, h) at n pitches in degrees (None or NaN: unknown, the mean latent)."""
        p = torch.full((n,), float("nan"), device=self.latent_mean.device) if pitch is None else pitch.float()
        return view_atlas.rows(self.view_atlas.float(), p)

    # ----- training -----
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


# Input layers that grow when a model gains input features; the new features are appended after the old ones
# (the motion prior's channels after the latent's, in patch_in's (c, py, px) order; the pitch after the action).
GROWING_INPUTS = ("dit.patch_in.weight", "dit.action_mlp.0.weight")


@torch.no_grad()
def load_extending(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load another model's weights into `model`, which may have more input features (the motion prior, the
    view's pitch): their weights start at zero, so the result computes exactly the other model's function until
    it is trained. Any other shape mismatch is an error naming the tensor."""
    own = model.state_dict()
    for k, v in state.items():
        if k not in own:
            continue
        if own[k].shape == v.shape:
            own[k].copy_(v)
        elif k in GROWING_INPUTS and own[k].shape[0] == v.shape[0] and own[k].shape[1] > v.shape[1]:
            own[k].zero_()
            own[k][:, : v.shape[1]] = v
        else:
            raise ValueError(f"{k} has shape {tuple(v.shape)}, this model needs {tuple(own[k].shape)}")


PITCH_FEATURES = 9  # sin and cos of 1..4 times the angle, and the known flag


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


PRIOR_FILLS = {"edge": "border", "mean": "zeros", "view": "zeros"}  # ModelConfig.prior_fill -> grid_sample's padding


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
