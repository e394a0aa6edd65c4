"""The training config and its presets. The defaults are the recipe of the model that ships; `tiny` is the same
design in seconds, for tests. Each field's docstring is the line under it; `worldsim train` derives its options
from these fields (same names, same units)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worldsim.model.config import AutoencoderConfig, DiTConfig, ModelConfig, SamplerConfig, from_dict


@dataclass
class TrainConfig:
    """How `worldsim train` trains a `ModelConfig`: the autoencoder, then the dynamics model, then the heads."""

    ae_steps: int = 3000
    """Autoencoder steps."""
    ae_batch: int = 24
    """Frames per autoencoder step."""
    ae_lr: float = 1e-3
    """Autoencoder peak learning rate."""
    dit_steps: int = 20000
    """Dynamics-model steps (refitted to the clock when time_budget_s is set)."""
    dit_batch: int = 8
    """Short sequences per dynamics step (long ones: the same frames per step)."""
    dit_lr: float = 3e-4
    """Dynamics-model peak learning rate."""
    heads_steps: int = 1500
    """Outcome-head steps."""
    heads_batch: int = 256
    """Transitions per outcome-head step."""
    heads_lr: float = 1e-3
    """Outcome-head learning rate."""
    decoder_steps: int = 0
    """Decoder fine-tuning steps on the frozen encoder's latents, run last (0: none)."""
    decoder_batch: int = 32
    """Frames per decoder step."""
    decoder_lr: float = 3e-4
    """Decoder fine-tuning learning rate."""
    warmup: int = 300
    """Linear learning-rate warm-up steps of each phase (then a cosine decay to a tenth)."""
    schedule_start: int = 0
    """Dynamics step where its learning-rate schedule (warm-up, cosine to the end) starts: `worldsim continue` sets
    it to the step it resumes from, so every sitting is one warm restart that ends annealed."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    ema: float = 0.999
    """Decay of the exponential moving average of the weights (what checkpoints hold for inference)."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    seq_len: int = 16
    """Frames of a short training sequence (batches alternate short and long sequences, as Dreamer 4's do)."""
    long_seq: int = 64
    """Frames of a long training sequence: longer than the context, so dreams of any length stay in distribution."""
    bootstrap_share: float = 0.25
    """Share of sequences trained on the shortcut bootstrap target (steps larger than the smallest)."""
    rollout_share: float = 0.5
    """Share of sequences whose frames are mostly at context level, as a dream's past is."""
    context_min: float = 0.3
    """Lowest signal level such a context frame gets (the campaign's recipe: `docs/training_log.md`)."""
    self_forcing: float = 0.5
    """Share of short batches with frames that are the model's own dream of them (targets stay real)."""
    self_forcing_frames: int = 3
    """Frames of a self-forced sequence that the model dreams (from the real frames before them)."""
    self_forcing_after: int = 0
    """Real frames a self-forced sequence ends with after the dreamed ones (> 0: the dream is only their past,
    its own frames out of the loss)."""
    self_forcing_steps: int = 0
    """Shortcut steps per dreamed frame of a self-forced sequence (0: the sampler's default): one step dreams a
    long past at half the cost."""
    still_forcing: float = 0.2
    """Share of long batches that are windows where the player stands still, dreamed by the model from their
    first `still_forcing_real` real frames with the real frames as targets. Why: in a still scene the real frame
    is known however long the dream, so a long own rollout has an exact target (elsewhere a long dream leaves the
    real frames and its loss teaches their mean), and the model learns to bring a drifting stand back."""
    still_forcing_real: int = 4
    """Real frames a still-forced window starts from (the rest of it is the model's dream)."""
    still_start: float = 0.0
    """Share of short batches that are walking windows whose first `still_start_frames` frames are replaced by
    copies of the last of them, the actions into them released: the player stood, then walks. Why: a dream starts
    from a standing player (the hold bench's starts, a game's first frames), while the data's player almost never
    stands and then walks (218 such steps in 326k), so the model learnt motion from the frames' past, not from the
    keys, and a dream told to walk from a still start stands (`docs/training_log.md`, fourteenth sitting)."""
    still_start_frames: int = 4
    """Frames a still-started window stands for (a dream's start: `ModelConfig.start_frames`)."""
    prior_turn: str = "rotation"
    """What moves a recorded frame into its successor's motion prior: the camera action ("action") or the turn the
    view made ("view", from the episode's recorded poses). Why: while a GUI is open or the pitch is at its clamp
    the camera action does not turn the view (a quarter of the turning steps of the policy mix), so a prior moved
    by the action is wrong there and the network learns to distrust it under every turn; a dream has only the
    action, which is the view's turn everywhere else. "rotation": the view's turn, made as the camera's exact
    rotation (`ModelConfig.prior_geometry`, which this sets): a shift is right only near the picture's centre, and
    on held-out turns the rotated frame leaves a third less latent error (`docs/bench/rotation_prior.json`)."""
    prior_noise: float = 0.0
    """Largest noise level mixed into a frame's motion prior in training (uniform per frame from 0): the network
    learns the prior as a hint to correct, not a frame to copy; the sampler then uses half (`prior_noise`)."""
    time_budget_s: float = 0.0
    """Seconds the whole run may take (> 0: the dynamics schedule is fitted so that the run ends then)."""
    checkpoint_every: int = 250
    """Steps between checkpoints."""
    sample_every: int = 2000
    """Dynamics steps between dreamed sample videos."""
    log_every: int = 25
    """Steps between log lines (TensorBoard and log.jsonl)."""
    bf16: bool = True
    """Train under bf16 autocast where the hardware runs it."""
    compile: bool = False
    """torch.compile the dynamics model."""
    seed: int = 0
    """Seed of the data order, the diffusion noise and the initial weights."""
    num_threads: int = 0
    """Torch CPU threads (0: torch's default)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, {k: v for k, v in d.items() if k not in RETIRED})


#: Fields of runs started before the first model generation was retired: ignored when a run resumes.
RETIRED = ("ctx_aug_prob", "ctx_aug_max", "sampler_level_prob", "pitch_drop")


@dataclass
class Preset:
    model: ModelConfig
    train: TrainConfig


def preset(name: str) -> Preset:
    """`small`: the defaults, what ships (64x64 frames, 40 frames of context, 64 tokens per frame); `tiny`: the
    same network design at 32x32 in seconds, for tests."""
    if name == "small":
        return Preset(ModelConfig(), TrainConfig())
    if name == "tiny":
        return Preset(
            ModelConfig(frame_size=32, context=6, start_frames=2, ae=AutoencoderConfig(channels=(16, 32), latent_channels=4),
                        sampler=SamplerConfig(steps=2, context_noise=0.1),
                        dit=DiTConfig(width=64, depth=4, heads=2, patch=2, action_hidden=64, time_every=2, step_levels=2)),
            # the recipe's self-forced and still-forced dreams and rotated priors off: tests turn each on where they
            # test it, and the rest of the suite does not spend its minutes dreaming
            TrainConfig(ae_steps=30, ae_batch=8, dit_steps=30, dit_batch=2, seq_len=4, long_seq=10, heads_steps=20,
                        heads_batch=16, warmup=5, checkpoint_every=10, sample_every=20, log_every=5, ae_lr=2e-3,
                        dit_lr=1e-3, ema=0.9, context_min=0.8, self_forcing=0.0, still_forcing=0.0, prior_turn="action"))
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


PRESETS = ("small", "tiny")
