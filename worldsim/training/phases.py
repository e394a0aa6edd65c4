"""The phases of `worldsim train`, in order, as a table the trainer's one loop runs.

    ae       the autoencoder on random frames; then it is frozen and the dataset encoded once (`LatentCache`)
    dit      the dynamics model: shortcut forcing on latent sequences, short and long in turn, some self-forced
    heads    the outcome heads on real transitions, rare events oversampled
    decoder  optional: the decoder alone on the frozen latents (sharper frames; latents unchanged)

Why the autoencoder first and frozen: on a CPU every pass through the decoder is time the dynamics model does
not get; encoded once, a dynamics step reads a few KB per sequence (measured: more than 2x the samples/s).

Each phase is a `Phase`: what it optimises, its steps, learning rate and batch (`TrainConfig` fields), whether a
run still owes it steps, and `batches(trainer)`, which prepares the phase and returns its one-batch loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from worldsim.data.dataset import FrameSource
from worldsim.model.actions import MOVEMENT_KEYS
from worldsim.model.autoencoder import reconstruction_loss, to_pixels
from worldsim.model.heads import episode_events, outcome_loss
from worldsim.training.objective import own_dream, sequence_loss

if TYPE_CHECKING:
    from worldsim.training.trainer import Trainer

Loss = Callable[[], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Phase:
    name: str
    module: str  # the WorldModel attribute path this phase optimises
    steps: str  # the TrainConfig fields of its length, learning rate and batch
    lr: str
    batch: str
    show: str | None  # the statistic its progress bar shows
    batches: Callable[[Trainer], Loss]
    owed: Callable[[Trainer], bool]  # a run still owes this phase steps


def _ae(t: Trainer) -> Loss:
    src = FrameSource(t.ds, t.split.train)
    net = t.ddp(t.model.ae)

    def loss():
        x = to_pixels(src.sample(t.tc.ae_batch, t.np_rng).to(t.device))
        with t.autocast():
            return net(x)  # Autoencoder.forward is its loss, so DDP sees the whole step

    return loss


def _dit(t: Trainer) -> Loss:
    """Batches alternate short and long sequences (the same frames per batch), so the model learns both many
    starts and dreams longer than its context; a `self_forcing` share of the short ones hold the model's own
    dream of some of their frames, a `still_forcing` share of the long ones its dream of a long stand."""
    tc, cache = t.tc, t.latents()
    lengths = sorted({tc.seq_len, tc.long_seq})
    starts = {}
    for n in lengths:
        s = cache.windows(n)
        starts[n] = s[s + n <= t.split.first_val_frame]  # whole sequences from training episodes only
        if len(starts[n]) == 0:
            raise ValueError(f"no training sequence of {n} frames: the episodes are too short for seq_len/long_seq")
    still = np.zeros(0, np.int64)  # still-forcing windows: the player stands still in all of them
    if tc.still_forcing > 0:
        if not 1 <= tc.still_forcing_real <= min(t.model.cfg.context, tc.long_seq - 1):
            raise ValueError(f"TrainConfig.still_forcing_real must be 1 to {min(t.model.cfg.context, tc.long_seq - 1)} "
                             f"(real frames before the dream in a {tc.long_seq}-frame window), got {tc.still_forcing_real}")
        noop = np.asarray(t.model.codec.encode(t.model.codec.noop()), np.float32)
        still = cache.still_windows(tc.long_seq, noop)
        still = still[still + tc.long_seq <= t.split.first_val_frame]
    walks = np.zeros(0, np.int64)  # still-start windows: the player walks from the end of the frozen frames on
    if tc.still_start > 0:
        if not 1 <= tc.still_start_frames <= tc.seq_len - 2:
            raise ValueError(f"TrainConfig.still_start_frames must be 1 to {tc.seq_len - 2} (a {tc.seq_len}-frame "
                             f"window keeps real frames after it), got {tc.still_start_frames}")
        moving = [t.model.codec.slices[k] for k in MOVEMENT_KEYS if k in t.model.codec.space.spaces]
        if not moving:
            raise ValueError("TrainConfig.still_start needs movement keys in the action space (forward, back, ...)")
        walks = cache.walk_windows(tc.seq_len, tc.still_start_frames - 1, moving)
        walks = walks[walks + tc.seq_len <= t.split.first_val_frame]
        noop_t = torch.from_numpy(np.asarray(t.model.codec.encode(t.model.codec.noop()), np.float32))
    frames_per_batch = tc.dit_batch * tc.seq_len
    t.model.train()
    t.model.ae.requires_grad_(False)
    dit = t.ddp(t.model.dit)
    dit = torch.compile(dit) if tc.compile else dit
    with_prior = t.model.prior is not None

    def loss():
        n = lengths[t.step % len(lengths)]
        stand = n == tc.long_seq and len(still) > 0 and t.np_rng.random() < tc.still_forcing
        starting = n == tc.seq_len and len(walks) > 0 and t.np_rng.random() < tc.still_start
        pick = t.np_rng.choice(still if stand else walks if starting else starts[n], max(1, frames_per_batch // n))
        z, a, known = (x.to(t.device) for x in cache.batch(pick, n))
        moved = cache.moved_seq(pick, n).to(t.device) if with_prior else None
        moved_by = cache.prior_actions(pick, n, a, t.model.prior.camera) if with_prior else None
        pitch = cache.view_pitch(pick, n)
        if starting:
            z, a, moved, moved_by, pitch = stood_then(tc.still_start_frames, noop_t.to(t.device), z, a, moved,
                                                      moved_by, pitch)
        inputs = prior = weight = None
        dreamed, after = None, 0
        if stand:  # a long dream of standing still; its targets, the real frames, are still exact
            dreamed = n - tc.still_forcing_real
        elif not starting and n == tc.seq_len and tc.self_forcing > 0 and t.np_rng.random() < tc.self_forcing:
            dreamed, after = tc.self_forcing_frames, tc.self_forcing_after
        if dreamed is not None:
            inputs, prior, weight = own_dream(t.model, z, a, known, moved, t.np_rng, "bf16" if t.bf16 else "fp32",
                                              dreamed, after, tc.self_forcing_steps or None, moved_by, pitch)
        with t.autocast():
            value, parts = sequence_loss(t.model, z, a, known, tc.bootstrap_share, tc.rollout_share, tc.context_min,
                                         t.noise_gen, net=dit, moved=moved, inputs=inputs, prior=prior,
                                         prior_noise=tc.prior_noise, weight=weight, prior_flat=moved_by)
        return value, {"lr": t.opt.param_groups[0]["lr"], "self_forced": float(inputs is not None and not stand),
                       "still_forced": float(stand), "still_started": float(starting), **parts}

    return loss


def stood_then(c: int, noop: torch.Tensor, z: torch.Tensor, a: torch.Tensor, moved: torch.Tensor | None,
               moved_by: torch.Tensor | None, pitch: torch.Tensor | None) -> tuple:
    """A window (latents z (B, F, C, h, w), actions into each frame a (B, F, A), each frame's motion prior `moved`
    and the actions that moved it, the view's pitch (B, F)) in which the player stands for its first c frames:
    they become copies of frame c-1, the actions into them the no-op, their priors that same frame unmoved. A still
    view renders identically, so this is what the game shows of a player who stood there and then did what the
    window's later actions do."""
    z = z.clone()
    z[:, :c] = z[:, c - 1:c]
    a = a.clone()
    a[:, :c] = noop
    if moved is not None:
        moved = moved.clone()
        moved[:, :c] = z[:, c - 1:c]
    if moved_by is not None:
        moved_by = moved_by.clone()
        moved_by[:, :c] = noop
    if pitch is not None:
        pitch = pitch.clone()
        pitch[:, :c] = pitch[:, c - 1:c]
    return z, a, moved, moved_by, pitch


def _heads(t: Trainer) -> Loss:
    """(frame t, frame t+1, action t) of real training transitions; half of each batch uniform, the other half
    from each outcome's positives in turn. The log-odds that oversampling adds are measured on the sampler and
    removed at prediction (`OutcomeHeads.prior_shift`), so a dream pays at the real game's rates."""
    tc, cache, model = t.tc, t.latents(), t.model
    events, term = _outcomes(t, cache)
    idx = np.flatnonzero(np.asarray(cache.known) > 0)
    idx = idx[idx < t.split.first_val_frame]
    outcomes = np.concatenate([events, term[:, None]], axis=1)  # (N, E + 1)
    strata = [idx[outcomes[idx, j] > 0] for j in range(outcomes.shape[1])]
    strata = [s for s in strata if len(s)] or [idx]

    def draw(rng: np.random.Generator) -> np.ndarray:
        half = tc.heads_batch // 2
        rare = [rng.choice(strata[i % len(strata)]) for i in range(tc.heads_batch - half)]
        return np.concatenate([rng.choice(idx, half), np.asarray(rare, np.int64)])

    probe = np.concatenate([draw(np.random.default_rng(tc.seed + i)) for i in range(64)])
    eps = 0.5 / len(idx)
    logit = lambda p: np.log(p.clip(eps, 1 - eps) / (1 - p.clip(eps, 1 - eps)))  # noqa: E731
    p_real = outcomes[idx].mean(0)
    shift = np.where(p_real > 0, logit(outcomes[probe].mean(0)) - logit(p_real), 0.0)  # never seen: no shift
    model.heads.prior_shift.copy_(torch.from_numpy(shift).float())
    model.heads.train()
    heads = t.ddp(model.heads)

    def loss():
        pick = draw(t.np_rng)
        z = torch.from_numpy(cache.latents[np.stack([pick - 1, pick], 1)].astype(np.float32)).to(t.device)
        a = model.codec.features(torch.from_numpy(np.asarray(cache.actions[pick])).to(t.device))
        logits, term_logit = heads(z[:, 0], z[:, 1], a)
        return outcome_loss(logits, term_logit, torch.from_numpy(events[pick]).to(t.device),
                            torch.from_numpy(term[pick]).to(t.device))

    return loss


def _outcomes(t: Trainer, cache) -> tuple[np.ndarray, np.ndarray]:
    """Per cached frame i: the events (N, E) of the transition that led into it and its termination (N,)."""
    n, names = int(cache.offsets[-1]), t.model.cfg.outcome_events
    events, term = np.zeros((n, len(names)), np.float32), np.zeros(n, np.float32)
    keys = list(t.ds.info.get("count_keys") or [])
    for e, off in zip(json.loads((cache.root / "index.json").read_text())["episodes"], cache.offsets[:-1]):
        ep = t.ds.episode(e)
        rows = slice(off + 1, off + 1 + len(ep))
        events[rows] = episode_events(ep, names, keys)
        term[rows] = ep.terminations
    return events, term


def _decoder(t: Trainer) -> Loss:
    """More reconstruction training for the decoder alone (as GameNGen does), on the latents the frozen encoder
    gave every training frame: the latents do not change, so the dynamics model, the heads and the cache stay valid."""
    tc, cache, model = t.tc, t.latents(), t.model
    slot_episode = json.loads((cache.root / "index.json").read_text())["episodes"]
    src = FrameSource(t.ds, t.split.train)
    model.train()
    model.ae.encoder.requires_grad_(False)
    model.ae.decoder.requires_grad_(True)
    dec = t.ddp(model.ae.decoder)
    mean, std = model.latent_mean[:, None, None], model.latent_std[:, None, None]

    def loss():
        idx = np.sort(t.np_rng.integers(0, t.split.first_val_frame, tc.decoder_batch))
        slot = np.searchsorted(cache.offsets, idx, side="right") - 1
        frames = np.stack([src.frames(slot_episode[s])[i - cache.offsets[s]] for s, i in zip(slot, idx)])
        z = torch.from_numpy(cache.latents[idx].astype(np.float32)).to(t.device) * std + mean
        x = to_pixels(torch.from_numpy(frames).to(t.device))
        with t.autocast():
            y = dec(z)
        return reconstruction_loss(y, x, "decoder")

    return loss


PHASES = (
    Phase("ae", "ae", "ae_steps", "ae_lr", "ae_batch", "ae_psnr", _ae, lambda t: t.step < t.tc.ae_steps),
    Phase("dit", "dit", "dit_steps", "dit_lr", "dit_batch", None, _dit,
          lambda t: t.dit_done < t.tc.dit_steps or t.budget_left() > 60),
    # the heads read latents of real frames, not the dynamics model: trained once, they stay valid
    Phase("heads", "heads", "heads_steps", "heads_lr", "heads_batch", "heads_event_recall", _heads,
          lambda t: not bool(t.model.heads_trained)),
    Phase("decoder", "ae.decoder", "decoder_steps", "decoder_lr", "decoder_batch", "decoder_psnr", _decoder,
          lambda t: t.decoder_done < t.tc.decoder_steps),
)
ORDER = {p.name: i for i, p in enumerate(PHASES)} | {"done": len(PHASES)}
