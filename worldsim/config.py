"""Typed configs with named presets. Every checkpoint stores its `ModelConfig` as JSON, so it loads alone."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AutoencoderConfig:
    """Frames (size x size x 3) <-> latents (size/downsample)^2 x latent_channels."""

    channels: tuple[int, ...] = (64, 128, 128)  # one entry per resolution; len-1 = number of 2x downsamplings
    latent_channels: int = 8
    blocks_per_level: int = 1

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass
class DiTConfig:
    """The spacetime diffusion transformer over patches of K+1 latent frames."""

    width: int = 256
    depth: int = 8
    heads: int = 4
    patch: int = 2
    mlp_ratio: float = 4.0
    action_hidden: int = 256
    # second generation (ModelConfig.generation = 2: worldsim.spacetime)
    time_every: int = 2  # every n-th layer attends in time (the others in space)
    step_levels: int = 4  # shortcut step sizes d = 1, 1/2, ..., 2^-step_levels (the smallest is trained by flow matching)
    steer: bool = True  # space layers: 2D rotary positions, queries moved by an offset learnt from the action (Block)


@dataclass
class SamplerConfig:
    steps: int = 3  # network evaluations per generated frame
    shift: float = 1.0  # >1 spends more of the steps at high noise
    context_noise: float = 0.02  # noise level (1 - signal level in generation 2) the (clean) context is given and labelled with at rollout time
    reencode: bool = True  # decode the new frame to uint8 pixels and re-encode it as context (keeps latents on the data manifold)
    key_guidance: float = 0.0  # g > 0: the first step moves g times further from what releasing every key gives (WorldModel._released_velocity)
    pixel_prior: bool = False  # the new frame's motion prior is the last frame moved in pixels, then encoded (WorldModel.pixel_prior)
    prior_start: float = 0.0  # s0 in [0, 1): a frame whose camera moves starts at noise level s0 from its motion prior (0: off)


@dataclass
class ModelConfig:
    # 1: the first model (worldsim.dit: K frames recomputed per frame, velocity prediction, motion prior);
    # 2: the space-time model (worldsim.spacetime: long context in a rolling cache, shortcut forcing, x-prediction)
    generation: int = 1
    frame_size: int = 64  # frame height in pixels
    frame_width: int = 0  # 0: square frames (frame_size x frame_size)
    context: int = 4  # K: past frames the model conditions on (generation 2: frames a time layer looks back)
    start_frames: int = 4  # generation 2: real frames a dream starts from (its cache fills as it goes)
    ae: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    action_space_json: str = ""  # worldsim.actions.space_to_json of the action Dict the model was trained on
    # Motion prior: each frame also sees the frame before it moved as its camera action moves the picture
    # (worldsim.motion measures the game's pixels per degree from the training data when this is left at zero).
    motion_prior: bool = False
    camera_px_per_deg: tuple[float, float] = (0.0, 0.0)  # (down, right) pixel shift per degree of (pitch, yaw)
    # What the prior puts in the strip a camera move reveals: "mean" (the average latent: unknown) or "edge" (the edge
    # repeated). Edge-filling makes an all-ground view stay all ground when
    # the camera looks back up: the dream forgets the horizon.
    prior_fill: str = "mean"
    # Condition every frame on the camera's absolute pitch (degrees, positive looks down) where the data reports
    # it: frames alone cannot tell "looking at the ground" from "standing on a plain", so a long dream forgets
    # where the horizon is. The pitch is summed from the camera actions in a dream and clamped as the game does.
    view_pitch: bool = False
    pitch_limit: float = 90.0  # the game clamps pitch to +-pitch_limit degrees
    # What the outcome heads predict (worldsim.heads): per name, whether that count of the dataset's
    # infos["counts"] rose on a step ("reward": the recorded reward was positive, for datasets without counts).
    # Set from the training data, as the action space is.
    outcome_events: tuple[str, ...] = ("reward",)

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.frame_size, self.frame_width or self.frame_size

    @property
    def latent_hw(self) -> tuple[int, int]:
        h, w = self.frame_hw
        return h // self.ae.downsample, w // self.ae.downsample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass
class TrainConfig:
    ae_steps: int = 20000
    ae_batch: int = 32
    ae_lr: float = 4e-4
    dit_steps: int = 60000
    dit_batch: int = 32
    dit_lr: float = 3e-4
    heads_steps: int = 1500
    heads_batch: int = 256
    heads_lr: float = 1e-3
    decoder_steps: int = 0  # decoder fine-tuning on the frozen encoder's latents, after everything else (0: none)
    decoder_batch: int = 32
    decoder_lr: float = 3e-4
    warmup: int = 500
    weight_decay: float = 0.01
    ema: float = 0.999
    grad_clip: float = 1.0
    ctx_aug_prob: float = 0.5  # fraction of windows trained in the rollout regime: clean-ish context, noisy target
    ctx_aug_max: float = 0.15  # max noise level given to context frames in that regime
    sampler_level_prob: float = 0.5  # share of those windows whose target takes a level the 1-3 step samplers use
    pitch_drop: float = 0.1  # share of windows trained with the pitch hidden (models with view_pitch), so a dream
    # started without a known pitch (a still image, imported footage) still works
    # generation 2 (shortcut forcing on sequences): batches alternate short and long sequences (Dreamer 4), both
    # longer than the context where `long_seq` is, with the same frames per batch
    seq_len: int = 16
    long_seq: int = 64
    bootstrap_share: float = 0.25  # share of sequences trained on the bootstrap target (steps larger than the smallest)
    rollout_share: float = 0.5  # share of sequences whose frames are mostly context-level (a rollout's past)
    context_min: float = 0.8  # lowest signal level such a context frame gets
    self_forcing: float = 0.0  # share of short-sequence batches whose frames after the start are the model's own dream (targets stay real)
    time_budget_s: float = 0.0  # > 0: the dynamics schedule's length is fitted so that the run ends at this clock
    checkpoint_every: int = 1000
    sample_every: int = 5000
    log_every: int = 50
    bf16: bool = True
    compile: bool = False
    seed: int = 0
    num_threads: int = 0  # 0: torch's default

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


@dataclass
class Preset:
    model: ModelConfig
    train: TrainConfig


def preset(name: str) -> Preset:
    """Named presets: tiny (tests, seconds), small (64x64, CPU in hours; the shipped default), base (128x128, GPU),
    large (MineRL's 16:9 aspect at 176x320, multi-GPU)."""
    if name == "tiny":
        return Preset(
            ModelConfig(frame_size=32, context=2, ae=AutoencoderConfig(channels=(16, 32), latent_channels=4), motion_prior=True, view_pitch=True,
                        dit=DiTConfig(width=64, depth=2, heads=2, patch=2, action_hidden=64)),
            TrainConfig(ae_steps=30, ae_batch=8, dit_steps=30, dit_batch=4, heads_steps=20, heads_batch=16, decoder_steps=10, decoder_batch=8,
                        warmup=5, checkpoint_every=10,
                        sample_every=20, log_every=5, ae_lr=2e-3, dit_lr=1e-3, ema=0.9))
    if name == "small":  # sized by measurement on 2 CPU cores: ~45 dynamics samples/s (bf16), ~17 dreamed frames/s
        return Preset(
            ModelConfig(frame_size=64, context=4, ae=AutoencoderConfig(channels=(32, 64, 128), latent_channels=8), motion_prior=True, view_pitch=True, sampler=SamplerConfig(pixel_prior=True),
                        dit=DiTConfig(width=256, depth=8, heads=4, patch=4, action_hidden=256)),
            TrainConfig(ae_steps=1500, ae_batch=24, ae_lr=1e-3, dit_steps=6000, dit_batch=32, dit_lr=3e-4, warmup=300, decoder_steps=2000,
                        checkpoint_every=250, sample_every=1000, log_every=25))
    if name == "base":
        return Preset(
            ModelConfig(frame_size=128, context=8, ae=AutoencoderConfig(channels=(64, 128, 256), latent_channels=8), motion_prior=True, view_pitch=True, sampler=SamplerConfig(pixel_prior=True),
                        dit=DiTConfig(width=512, depth=12, heads=8, patch=2, action_hidden=512)),
            TrainConfig(ae_steps=50000, ae_batch=64, dit_steps=200000, dit_batch=64, checkpoint_every=2000))
    if name == "large":
        return Preset(
            ModelConfig(frame_size=176, frame_width=320, context=16, motion_prior=True, view_pitch=True, sampler=SamplerConfig(pixel_prior=True),
                        ae=AutoencoderConfig(channels=(64, 128, 256, 256), latent_channels=16),
                        dit=DiTConfig(width=1024, depth=24, heads=16, patch=2, action_hidden=1024)),
            TrainConfig(ae_steps=100000, ae_batch=128, dit_steps=500000, dit_batch=256, checkpoint_every=5000))
    if name == "tiny2":  # the space-time model (generation 2) in seconds, for tests
        return Preset(
            ModelConfig(generation=2, frame_size=32, context=6, start_frames=2, ae=AutoencoderConfig(channels=(16, 32), latent_channels=4),
                        motion_prior=True, sampler=SamplerConfig(steps=2, context_noise=0.1, reencode=False, pixel_prior=True),
                        dit=DiTConfig(width=64, depth=4, heads=2, patch=2, mlp_ratio=8 / 3, action_hidden=64, time_every=2, step_levels=2)),
            TrainConfig(ae_steps=30, ae_batch=8, dit_steps=30, dit_batch=2, seq_len=4, long_seq=10, heads_steps=20, heads_batch=16,
                        decoder_steps=0, warmup=5, checkpoint_every=10, sample_every=20, log_every=5, ae_lr=2e-3, dit_lr=1e-3, ema=0.9))
    if name == "small2":  # the space-time model at 64x64: 40 frames of context (2 s), 64 tokens per frame
        return Preset(
            ModelConfig(generation=2, frame_size=64, context=40, start_frames=4, ae=AutoencoderConfig(channels=(32, 64, 128), latent_channels=8),
                        motion_prior=True, sampler=SamplerConfig(steps=2, context_noise=0.1, reencode=False, pixel_prior=True),
                        dit=DiTConfig(width=192, depth=8, heads=3, patch=2, mlp_ratio=8 / 3, action_hidden=192, time_every=2, step_levels=4)),
            TrainConfig(ae_steps=3000, ae_batch=24, ae_lr=1e-3, dit_steps=20000, dit_batch=8, seq_len=16, long_seq=64, dit_lr=3e-4,
                        warmup=300, decoder_steps=0, checkpoint_every=250, sample_every=2000, log_every=25))
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


PRESETS = ("tiny", "small", "base", "large", "tiny2", "small2")


def _from_dict(cls, d: dict[str, Any]):
    """Rebuild a (nested) dataclass from its asdict() form; unknown keys are an error, missing keys keep defaults."""
    if not isinstance(d, dict):
        raise ValueError(f"expected a JSON object for {cls.__name__}, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    for name, value in d.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if sub is not None and dataclasses.is_dataclass(sub):
            value = _from_dict(sub, value)
        elif isinstance(value, list) and name in ("channels", "camera_px_per_deg", "outcome_events"):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
