"""The world model: autoencoder + dynamics transformer + outcome heads, and what turns frames into latents.

One class for both generations; each concept lives in its own module and is mixed in here:
`worldsim.conditioning` (action features), `worldsim.spacetime_dynamics` (generation 2: loss and generation over a
rolling cache), `worldsim.motion_prior` (the last frame moved by the camera action, an input of both), and the first
model's `worldsim.first_dynamics` (loss, sampler).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from gymnasium.spaces import Box
from torch import nn

from worldsim import shortcut, view_atlas
from worldsim.actions import ActionCodec, space_from_json
from worldsim.autoencoder import Autoencoder, to_pixels, to_uint8
from worldsim.conditioning import PITCH_FEATURES, Conditioning
from worldsim.config import ModelConfig
from worldsim.dit import DiT
from worldsim.first_dynamics import FirstDynamics
from worldsim.heads import OutcomeHeads
from worldsim.motion_prior import PRIOR_FILLS, MotionPrior
from worldsim.spacetime import SpaceTimeTransformer
from worldsim.spacetime_dynamics import SpaceTimeDynamics


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


class WorldModel(Conditioning, SpaceTimeDynamics, FirstDynamics, MotionPrior, nn.Module):
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
            self.dit = SpaceTimeTransformer(cfg.dit, cfg.ae.latent_channels, (lh, lw), cfg.context, self.codec.dim + 1,
                                            prior=cfg.motion_prior)
        elif cfg.generation == 1:
            c_in = cfg.ae.latent_channels * (2 if cfg.motion_prior else 1)
            cond_dim = self.codec.dim + 1 + (PITCH_FEATURES if cfg.view_pitch else 0)
            self.dit = DiT(cfg.dit, cfg.ae.latent_channels, (lh, lw), cfg.context + 1, cond_dim, in_channels=c_in)
        else:
            raise ValueError(f"ModelConfig.generation must be 1 or 2, got {cfg.generation!r}")
        c = cfg.ae.latent_channels
        self.heads = OutcomeHeads(c, self.codec.dim + 1, len(cfg.outcome_events))
        self.register_buffer("heads_trained", torch.zeros((), dtype=torch.bool))  # set once the heads phase ran
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))
        if cfg.prior_fill == "view":  # measured from the training data (worldsim.view_atlas), saved with the weights
            self.register_buffer("view_atlas", torch.zeros(view_atlas.BINS, c, lh))

    @staticmethod
    def _check_generation_2(cfg: ModelConfig) -> None:
        """The space-time model keeps the view in its context (no pitch), samples without guidance or warm starts,
        and takes the motion prior only in pixel space (a latent shift by a fraction of a cell cross-fades cells)."""
        sc = cfg.sampler
        used = [name for name, on in (("view_pitch", cfg.view_pitch), ("sampler.key_guidance", sc.key_guidance),
                                      ("sampler.prior_start", sc.prior_start)) if on]
        if used:
            raise ValueError(f"ModelConfig.generation 2 does not use {', '.join(used)}: turn them off")
        if cfg.motion_prior != sc.pixel_prior:
            raise ValueError("ModelConfig.generation 2 takes the motion prior in pixel space only: set motion_prior "
                             f"and sampler.pixel_prior together (got {cfg.motion_prior} and {sc.pixel_prior})")
        if cfg.prior_fill == "view":
            raise ValueError('ModelConfig.generation 2 fills what a turn reveals from its context: prior_fill "mean" or "edge"')
        shortcut.step_index(sc.steps, cfg.dit.step_levels)  # a power of two the shortcut steps reach
        if not 0 < sc.context_noise < 1:
            raise ValueError(f"SamplerConfig.context_noise must lie in (0, 1) for generation 2, got {sc.context_noise}")

    @property
    def start_frames(self) -> int:
        """How many real frames a dream starts from: the whole context for the first model; for the space-time
        model `ModelConfig.start_frames` (its cache fills as the dream goes on)."""
        return self.cfg.context if self.cfg.generation == 1 else min(self.cfg.start_frames, self.cfg.context)

    @property
    def context(self) -> int:
        return self.cfg.context

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

    @torch.no_grad()
    def outcome(self, z_prev: torch.Tensor, z_next: torch.Tensor, flat_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted events (B, E) in {0, 1} (`cfg.outcome_events`) and termination (B,) of the transition
        z_prev -> z_next under the action; zeros / False when this model's heads were never trained."""
        b = z_prev.shape[0]
        if not bool(self.heads_trained):
            return (torch.zeros(b, len(self.cfg.outcome_events), device=z_prev.device),
                    torch.zeros(b, dtype=torch.bool, device=z_prev.device))
        return self.heads.predict(z_prev.float(), z_next.float(), self.action_features(flat_action))




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
