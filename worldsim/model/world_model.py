"""The world model: a tokenizer, a dynamics network and outcome heads, composed.

    ae     frames (H, W, 3) <-> latent grids (C, h, w)            `worldsim.model.autoencoder`
    dit    noisy latent frames + conditioning -> clean frames     `worldsim.model.transformer`
    heads  (frame t, frame t+1, action) -> events, termination    `worldsim.model.heads`
    prior  the last frame moved by the camera action (no weights) `worldsim.model.motion_prior`

Latents are standardised per channel (`latent_mean`, `latent_std`, measured on the training data), so the
diffusion noise has the data's scale. An action enters as a flat vector and is featurised once per step
(`worldsim.model.actions.ActionCodec.features`); the dynamics network and the heads read the same features. The objective
lives in `worldsim.training.objective`, the rollout state of dreams in `worldsim.sampling.sampler`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import time

import torch
from torch import nn

from worldsim.model import shortcut
from worldsim.model.actions import ActionCodec, space_from_json
from worldsim.model.autoencoder import Autoencoder, to_pixels, to_uint8
from worldsim.model.config import ModelConfig
from worldsim.model.heads import OutcomeHeads
from worldsim.model.motion_prior import MotionPrior
from worldsim.model.transformer import SpaceTimeTransformer

PRECISIONS = ("auto", "fp32", "bf16")
#: The autoencoder's convolutions run on channels-last pixels: oneDNN's convolutions are ~1.4x faster so on the CPU
#: (a dream's decode at 32 dreams: 375 -> 232 ms on one thread) and the weights keep their layout.
CONV_LAYOUT = torch.channels_last


def check_context_noise(level: float) -> float:
    """A dream's past enters its cache at signal 1 - level: 0 would label it clean, 1 would erase it."""
    if not 0 < level < 1:
        raise ValueError(f"SamplerConfig.context_noise must lie in (0, 1), got {level}")
    return level


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.action_space_json:
            raise ValueError("ModelConfig.action_space_json is empty: the model must know its action space")
        shortcut.step_index(cfg.sampler.steps, cfg.dit.step_levels)  # a power of two the shortcut steps reach
        check_context_noise(cfg.sampler.context_noise)
        self.cfg = cfg
        self.precision = "fp32"  # inference numerics; see set_precision
        self.inference_only = False  # its matmul weights are stored in bf16: see cast_for_inference
        self.codec = ActionCodec(space_from_json(cfg.action_space_json))
        c, hw = cfg.ae.latent_channels, cfg.latent_hw
        self.ae = Autoencoder(cfg.ae)
        self.dit = SpaceTimeTransformer(cfg.dit, c, hw, cfg.context, self.codec.dim + 1, prior=cfg.motion_prior)
        self.heads = OutcomeHeads(c, self.codec.dim + 1, len(cfg.outcome_events))
        self.register_buffer("heads_trained", torch.zeros((), dtype=torch.bool))  # set once the heads phase ran
        self.register_buffer("latent_mean", torch.zeros(c))
        self.register_buffer("latent_std", torch.ones(c))
        self.prior = (MotionPrior(self.codec.slices.get("camera"), cfg.camera_px_per_deg, cfg.prior_fill,
                                  cfg.ae.downsample, self.encode, cfg.prior_geometry, cfg.camera_fov)
                      if cfg.motion_prior else None)

    @property
    def start_frames(self) -> int:
        """Real frames a dream starts from (its cache fills as the dream goes on)."""
        return min(self.cfg.start_frames, self.cfg.context)

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    # ----- numerics -----
    def set_precision(self, precision: str) -> WorldModel:
        """Inference numerics: "fp32", "bf16" (autocast; the model trains under bf16 autocast) or "auto" (whichever
        is measured faster on this machine: `fastest_precision`). Weights stay fp32 (`cast_for_inference`)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        chosen = fastest_precision(self) if precision == "auto" else precision
        if self.inference_only and chosen != "bf16":
            raise ValueError("this model's weights were stored in bf16 for inference (`cast_for_inference`): "
                             f"load the checkpoint again with precision={chosen!r}")
        self.precision = chosen
        return self

    def cast_for_inference(self) -> WorldModel:
        """Under bf16 numerics, store the weights autocast casts (the linear and convolution layers of the dynamics
        network and the autoencoder) in bf16, once. Why: autocast casts every fp32 weight again on every call, a
        quarter of a dreamed frame's time at batch 1 on the CPU, and a stored cast is the same rounding, so the
        model dreams the same frames. Norms, positions, embeddings, buffers and the heads stay fp32 (the residual
        stream stays in fp32 as under autocast). For inference only: nothing may train these weights afterwards.
        A no-op under fp32 numerics."""
        if self.precision == "bf16" and not self.inference_only:
            _cast_matmuls(self.dit, torch.bfloat16)
            _cast_matmuls(self.ae, torch.bfloat16)
            self.requires_grad_(False)
            self.inference_only = True
        return self

    def compile(self) -> WorldModel:
        """Fuse the dynamics network's dream steps with `torch.compile` (`SpaceTimeTransformer.compile`): at batch 1
        on the CPU a frame costs about two thirds of the eager time. The autoencoder stays eager (its convolutions
        are one kernel each already). Each new batch size compiles once, on its first step."""
        self.dit.compile()
        return self

    def autocast(self):
        """The autocast context of this model's inference precision."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # ----- frames <-> standardised latents -----
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> standardised latents (..., C, h, w)."""
        lead = frames.shape[:-3]
        x = to_pixels(frames.reshape(-1, *frames.shape[-3:]).to(self.device)).contiguous(memory_format=CONV_LAYOUT)
        with self.autocast():
            z = self.ae.encode(x)
        z = (z.float() - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        return z.reshape(*lead, *z.shape[1:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """standardised latents (..., C, h, w) -> uint8 frames (..., H, W, 3)."""
        lead = z.shape[:-3]
        z = z.reshape(-1, *z.shape[-3:]).float() * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        z = z.contiguous(memory_format=CONV_LAYOUT)
        with self.autocast():
            x = self.ae.decode(z)
        return to_uint8(x.float()).reshape(*lead, *self.cfg.frame_hw, 3)

    # ----- outcomes -----
    @torch.no_grad()
    def outcome(self, z_prev: torch.Tensor, z_next: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted events (B, E) in {0, 1} (`cfg.outcome_events`) and termination (B,) of the transition
        z_prev -> z_next under action features (B, A + 1); zeros / False when the heads were never trained."""
        b = z_prev.shape[0]
        if not bool(self.heads_trained):
            return (torch.zeros(b, len(self.cfg.outcome_events), device=z_prev.device),
                    torch.zeros(b, dtype=torch.bool, device=z_prev.device))
        return self.heads.predict(z_prev.float(), z_next.float(), feats.float())


@functools.cache
def cpu_has_bf16() -> bool:
    """The CPU has native bf16 dot products (AVX512-BF16 or AMX); elsewhere bf16 is emulated, far slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fastest_precision(model: WorldModel) -> str:
    """"bf16" or "fp32", whichever runs this model's frame faster here, measured once per model shape, device and
    compilation: a frame's network passes (a dream step's pass at batch 1 against a full context, times the
    sampler's steps + 1) and its decode. Why not read the CPU's flags: with AVX512-BF16 a 2-core Zen 4 runs a frame
    ~1.3x faster in bf16, while on a Xeon with AMX the network's pass alone ran faster in fp32 eagerly, yet the
    whole frame (the decoder's convolutions) and the compiled pass (`WorldModel.compile`) ran faster in bf16."""
    if model.device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if model.device.type != "cpu":
        return "fp32"
    key = json.dumps({"dit": model.cfg.dit.__dict__, "hw": model.cfg.latent_hw, "threads": torch.get_num_threads(),
                      "compiled": model.dit.compiled}, sort_keys=True, default=str)
    if key in _CHOICES:
        return _CHOICES[key]
    if not cpu_has_bf16():  # emulated bf16: several times slower, not worth measuring
        return "fp32"
    h, w = model.cfg.latent_hw
    n = model.cfg.context
    nets = {"fp32": copy.deepcopy(model.dit), "bf16": _cast_matmuls(copy.deepcopy(model.dit), torch.bfloat16)}
    decoders = {"fp32": copy.deepcopy(model.ae), "bf16": _cast_matmuls(copy.deepcopy(model.ae), torch.bfloat16)}
    latent = torch.zeros(1, model.cfg.ae.latent_channels, h, w).contiguous(memory_format=CONV_LAYOUT)
    context = (torch.zeros(1, n, model.dit.c_in, h, w), torch.ones(1, n), torch.zeros(1, n, dtype=torch.long),
               torch.zeros(1, n, model.codec.dim + 1), torch.arange(n)[None])
    x, level, step = torch.zeros(1, 1, model.dit.c_in, h, w), torch.full((1, 1), 0.5), torch.zeros(1, 1, dtype=torch.long)
    feats, now = torch.zeros(1, 1, model.codec.dim + 1), torch.full((1, 1), n)
    best = {}
    with torch.no_grad():
        for precision in ("fp32", "bf16"):
            ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
            try:
                with ctx:
                    cache = nets[precision].new_cache(1, "cpu")
                    nets[precision](*context, cache, write=n)
                    nets[precision](x, level, step, feats, now, cache)  # (a compiled network compiles here)
                    decoders[precision].decode(latent)
                    passes, decodes = [], []
                    for _ in range(5):
                        t0 = time.perf_counter()
                        nets[precision](x, level, step, feats, now, cache)
                        t1 = time.perf_counter()
                        decoders[precision].decode(latent)
                        passes.append(t1 - t0)
                        decodes.append(time.perf_counter() - t1)
            except RuntimeError:  # no bf16 kernels here
                continue
            best[precision] = (model.cfg.sampler.steps + 1) * min(passes) + min(decodes)
    _CHOICES[key] = min(best, key=best.get)
    return _CHOICES[key]


_CHOICES: dict[str, str] = {}


def _cast_matmuls(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """net with the parameters of its linear and convolution layers in `dtype` (their memory layout kept)."""
    for mod in net.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            mod.to(dtype)
    return net
