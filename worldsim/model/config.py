"""The model's typed config. Every checkpoint stores its `ModelConfig` as JSON, so a checkpoint loads alone.

The defaults are the model that ships (`worldsim/assets/default`). Each field's docstring is the line under it
(`field_docs` reads them, and the command line shows them as help).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class AutoencoderConfig:
    """The frame tokenizer: frames (H x W x 3) <-> latents (H/down x W/down x latent_channels)."""

    channels: tuple[int, ...] = (32, 64, 128)
    """Conv channels per resolution; len - 1 is the number of 2x downsamplings."""
    latent_channels: int = 8
    """Channels of the latent grid (64x64x3 frames -> 16x16x8 latents by default)."""
    blocks_per_level: int = 1
    """Residual blocks at each resolution."""

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass
class DiTConfig:
    """The space-time transformer over patches of latent frames (`worldsim.model.transformer`)."""

    width: int = 192
    """Token width."""
    depth: int = 8
    """Layers (space and time layers together)."""
    heads: int = 3
    """Attention heads per layer."""
    patch: int = 2
    """Latent cells per token side: a 16x16 latent in 2x2 patches is 64 tokens per frame."""
    mlp_ratio: float = 8 / 3
    """Hidden width of the SwiGLU MLP over the token width."""
    action_hidden: int = 192
    """Hidden width of the MLP that embeds each frame's action features."""
    time_every: int = 2
    """Every n-th layer attends in time (causally over the context), the others in space."""
    step_levels: int = 4
    """Shortcut step sizes d = 1, 1/2, ..., 2^-step_levels; the smallest is trained by flow matching."""
    steer: bool = True
    """Space layers use 2D rotary positions and move their queries by an offset learnt from the action."""


@dataclass
class SamplerConfig:
    """How a dream generates each frame (`worldsim.sampling.sampler`)."""

    steps: int = 2
    """Shortcut steps (network passes) per frame: a power of two up to 2^step_levels."""
    context_noise: float = 0.1
    """Noise level (1 - signal level) finished frames are given and labelled with in the context."""
    prior_noise: float = 0.0
    """Noise level mixed into each frame's motion prior (a hint the dream made itself: trusted fully, its errors
    are copied and amplified frame after frame); a model trained with `TrainConfig.prior_noise` samples at half it."""
    view_memory: int = 128
    """Frames a dream remembers with the view each was seen from (0: none): while only the camera moves, each prior
    is made from the remembered frame whose view is closest to the new one (`worldsim.sampling.memory`), so turned
    away and back, or once around, a dream draws the place it saw. 72 covers a full turn at 5 degrees a step."""
    detail_carry: float = 0.4
    """Carry the pixel detail a latent does not hold from frame to frame (`worldsim.sampling.detail`): the change
    of the decoded picture (mean absolute over channels, 0-1) at which a pixel's detail is dropped; 0: frames are
    their decoded latents alone."""
    still_below: float = 16.0
    """With the carry on, on a step the player does nothing: a pixel whose decoded value moved less than this many
    levels (0-255, largest channel) since the picture it shows was decoded keeps the shown value exactly
    (`worldsim.sampling.detail`), so a standing dream does not redraw the world with its own sampling noise; 0: off."""
    still_latent: float = 0.2
    """On a step the player does nothing: each element of the new latent within this of the frame before keeps the
    frame before's value, so a standing dream's past holds exact copies, as a standing player's real frames encode
    (the noisy near-copies it would hold instead are what no real context looks like, and the drift compounds:
    `worldsim.sampling.sampler`); 0: off."""


@dataclass
class ModelConfig:
    """The world model: tokenizer, dynamics transformer, motion prior, outcome heads."""

    frame_size: int = 64
    """Frame height in pixels."""
    frame_width: int = 0
    """Frame width in pixels (0: square frames)."""
    context: int = 40
    """Frames a time layer looks back (the rolling cache of a dream holds this many)."""
    start_frames: int = 4
    """Real frames a dream starts from (its cache fills as it goes)."""
    ae: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    """The frame tokenizer."""
    dit: DiTConfig = field(default_factory=DiTConfig)
    """The dynamics transformer."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """The default sampler of dreams (envs and commands may override the steps)."""
    action_space_json: str = ""
    """`worldsim.model.actions.space_to_json` of the action Dict the model was trained on (set from the data)."""
    motion_prior: bool = True
    """Each frame also sees the frame before it, moved in pixels by its camera action and encoded."""
    camera_px_per_deg: tuple[float, float] = (0.0, 0.0)
    """(down, right) pixels the picture moves per degree of (pitch, yaw); measured from the data when zero."""
    prior_geometry: str = "rotation"
    """How the motion prior moves a frame under a camera turn: "shift" (the whole picture by `camera_px_per_deg`)
    or "rotation" (the turn's exact homography for the game's `camera_fov` and the view's pitch: a pure turn moves
    every pixel as a function of the rotation alone, whatever its depth, while a shift is right only near the
    centre). Set from `TrainConfig.prior_turn`."""
    camera_fov: float = 70.0
    """The game's vertical field of view in degrees (Indev renders 70; square frames), for the rotation prior."""
    prior_fill: str = "mean"
    """What the motion prior puts in the strip a turn reveals: "mean" (the mean latent) or "edge" (edge repeated)."""
    pitch_limit: float = 90.0
    """The game clamps the camera's pitch to +-pitch_limit degrees; a dream tracks its pitch the same way."""
    outcome_events: tuple[str, ...] = ("reward",)
    """What the outcome heads predict: per name, whether that count of the data rose on a step (set from the data)."""

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
        return from_dict(cls, _retire(d))


#: Fields of configs written before the first model generation was retired, and the value each had in a
#: space-time model: a stored config with exactly that value loads (the field is dropped); any other is an error.
RETIRED = {
    "generation": 2, "view_pitch": False,
    "sampler.shift": 1.0, "sampler.reencode": False, "sampler.key_guidance": 0.0, "sampler.prior_start": 0.0,
}


def _retire(d: dict[str, Any]) -> dict[str, Any]:
    """A stored model config without the retired fields (see `RETIRED`); a first-generation config is an error."""
    if not isinstance(d, dict):
        return d
    d = {**d, "sampler": dict(d.get("sampler", {}))}
    if d.get("generation", 2) != 2:
        raise ValueError("a first-generation model (ModelConfig.generation 1): that design was retired; retrain it "
                         "with `worldsim train`")
    pixel = d["sampler"].pop("pixel_prior", d.get("motion_prior", True))
    if pixel != d.get("motion_prior", True):
        raise ValueError("sampler.pixel_prior differs from motion_prior: the motion prior is made in pixel space only")
    for key, value in RETIRED.items():
        part, name = (d["sampler"], key.split(".")[1]) if key.startswith("sampler.") else (d, key)
        if name in part and part.pop(name) != value:
            raise ValueError(f"{key} was retired with the first model generation; only {value!r} loads")
    if not d["sampler"]:
        d.pop("sampler")
    d.setdefault("prior_geometry", "shift")  # stored before the rotation prior: every such model moved by a shift
    return d


def from_dict(cls, d: dict[str, Any]):
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
            value = from_dict(sub, value)
        elif isinstance(value, list) and isinstance(f.default, tuple):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Each field of a config dataclass -> the docstring written under it (the one place a field is explained)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs
