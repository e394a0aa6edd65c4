"""The sampler: the rollout state of a batch of dreams, and how each next frame is generated.

Every user of dreams goes through `Sampler`: the single env, the vector env, play, eval, the benches, RL and
self-forcing training. Per row (dream) it holds

- a rolling key/value cache of the last `context` finished frames (`KVCache`): a finished frame enters it
  corrupted to the context signal level 1 - `context_noise` (as training labels a dream's past), in the same
  network pass as the next frame's first denoising step, so a frame costs one frame of work at any length;
- its own noise generator, so a dream never depends on its batch mates (sub-env i of a vector env seeded s
  dreams what a single env seeded s + i dreams, up to the kernels' rounding at another batch size);
- the newest frame's pixels, whose move under the next action makes the next frame's motion prior;
- the pixel detail its latent does not hold, carried to the next frame (`worldsim.sampling.detail`);
- on steps the player does nothing, the newest latent held where the next one differs by less than the dream's
  noise (`SamplerConfig.still_latent`), so a standing dream's past is exact copies, as a standing player's is;
- the camera's pitch, summed from the camera actions and clamped as the game clamps it (reported in `info`);
- with `SamplerConfig.view_memory`, its recent frames and the view each was seen from (`worldsim.sampling.memory`);
- the last two latents, which the outcome heads read.

An action is converted to a tensor and featurised once per step; the denoiser and the heads share the features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldsim.model import shortcut
from worldsim.model.world_model import WorldModel
from worldsim.sampling.detail import DetailCarry
from worldsim.sampling.memory import ViewMemory


@dataclass
class Dreamed:
    """One step of a batch of dreams."""

    frames: np.ndarray
    """(B, H, W, 3) uint8: the new frames."""
    events: np.ndarray
    """(B, E) float in {0, 1}: the outcome heads' events of the step (`ModelConfig.outcome_events`)."""
    terminated: np.ndarray
    """(B,) bool: the heads' termination (death)."""


class Sampler:
    """A batch of B dreams of a world model; rows restart independently (`reset_rows`)."""

    def __init__(self, model: WorldModel, frames: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor | None = None,
                 steps: int | None = None, seeds: list[int] | None = None, pitch: np.ndarray | None = None):
        """frames (B, S, H, W, 3) uint8 real frames to start from (1 <= S <= context), actions (B, S-1, A) flat
        (None: unknown); steps: shortcut steps per frame (default the model's); seeds: one per row (default
        random); pitch (B,): the camera's pitch at the last start frame, degrees (NaN or None: unknown)."""
        self.model = model
        self.steps = steps or model.cfg.sampler.steps
        shortcut.step_index(self.steps, model.cfg.dit.step_levels)
        dev = model.device
        b = len(frames)
        c, (h, w) = model.cfg.ae.latent_channels, model.cfg.latent_hw
        self.cache = model.dit.new_cache(b, dev)
        self.pending_feats = torch.zeros(b, model.codec.dim + 1, device=dev)
        self.time = torch.zeros(b, dtype=torch.int64, device=dev)  # the pending frame's time stamp
        # the last two frames (the outcome heads read them); the newest is not in the cache yet (`pending`)
        self.latents = torch.zeros(b, 2, c, h, w, device=dev)
        self.pending_prior = torch.zeros(b, c, h, w, device=dev) if model.prior else None
        self.last_frame = torch.zeros(b, *model.cfg.frame_hw, 3, dtype=torch.uint8, device=dev)
        self.pitch = torch.full((b,), float("nan"), device=dev)
        self.view = torch.zeros(b, 2, device=dev)  # [pitch, yaw] of the newest frame: yaw summed from the start's
        self.memory = (ViewMemory(b, model.cfg.sampler.view_memory, (c, h, w), model.cfg.frame_hw, dev)
                       if model.cfg.sampler.view_memory > 0 and model.prior is not None else None)
        self.keys_only = torch.ones(model.codec.dim, dtype=torch.bool, device=dev)  # the flat entries of every key
        if "camera" in model.codec.slices:
            self.keys_only[model.codec.slices["camera"]] = False
        self.noop = torch.as_tensor(model.codec.encode(model.codec.noop()), dtype=torch.float32, device=dev)
        carry = model.cfg.sampler.detail_carry
        self.carry = (DetailCarry(b, model.cfg.frame_hw, carry, dev, model.cfg.sampler.still_below) if carry > 0
                      else None)
        if seeds is None:
            seeds = torch.randint(0, 2**31 - 1, (b,)).tolist()
        self.generators = [torch.Generator(device=dev) for _ in range(b)]
        self.reset_rows(list(range(b)), frames, actions, seeds, pitch)

    @property
    def pending(self) -> torch.Tensor:
        """The newest frame of every dream (B, C, h, w): it enters the cache with the next frame's first step."""
        return self.latents[:, 1]

    @torch.no_grad()
    def reset_rows(self, rows: list[int] | torch.Tensor, frames: np.ndarray | torch.Tensor,
                   actions: np.ndarray | torch.Tensor | None, seeds: list[int] | None = None,
                   pitch: np.ndarray | None = None) -> None:
        """Restart dreams `rows` from real frames (R, S, H, W, 3) and the actions between them (R, S-1, A)."""
        m = self.model
        dev = self.time.device
        rows = torch.as_tensor(rows, dtype=torch.long, device=dev)
        frames = frames.to(dev) if torch.is_tensor(frames) else torch.tensor(np.asarray(frames), device=dev)
        r, s = frames.shape[:2]
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8 or r != len(rows) or s < 1 \
                or tuple(frames.shape[2:4]) != m.cfg.frame_hw:
            raise ValueError(f"start frames must be uint8 (R={len(rows)}, S, {m.cfg.frame_hw[0]}, {m.cfg.frame_hw[1]}, 3), "
                             f"got {tuple(frames.shape)} {frames.dtype}")
        if s > m.cfg.context:
            raise ValueError(f"a dream starts from at most {m.cfg.context} frames (the model's context), got {s}")
        flat = torch.zeros(r, s, m.codec.dim, device=dev)
        known = torch.zeros(r, s, device=dev)
        if actions is not None and s > 1:
            a = _tensor(actions, dev)
            if a.shape != (r, s - 1, m.codec.dim):
                raise ValueError(f"start actions must be (R, S-1, A) = ({r}, {s - 1}, {m.codec.dim}), got {tuple(a.shape)}")
            flat[:, 1:], known[:, 1:] = a, 1.0
        if seeds is not None:
            for i, sd in zip(rows.tolist(), seeds):
                self.generators[i].manual_seed(int(sd))
        z = m.encode(frames)
        feats = m.codec.features(flat, known)
        p = torch.full((r,), float("nan"), device=dev) if pitch is None else torch.as_tensor(
            np.asarray(pitch, np.float32), device=dev).reshape(r).clamp(-m.cfg.pitch_limit, m.cfg.pitch_limit)
        views = self._start_views(p, flat)
        prior = None
        if m.prior is not None:  # each start frame's prior: the frame before it moved by the action between them
            moved = torch.zeros_like(z)
            if s > 1:
                moved[:, 1:] = m.prior.moved(frames[:, :-1].reshape(-1, *frames.shape[2:]),
                                             flat[:, 1:].reshape(-1, flat.shape[-1]),
                                             views[:, :-1, 0].reshape(-1)).reshape(r, s - 1, *z.shape[2:])
            prior = m.prior.sequence(moved, flat, known)  # as training makes it from the latent cache
            if m.cfg.sampler.prior_noise > 0:  # (a start frame with no frame before it keeps its zero prior)
                prior = self._noised(prior, rows.tolist()) * known[..., None, None, None]
        part = self.cache.subset(rows)
        part.clear_rows(torch.arange(r, device=dev))
        if s > 1:  # every start frame but the last goes into the cache now; the last joins the first step
            eps = torch.stack([torch.randn(z.shape[1:], generator=self.generators[i], device=dev)[: s - 1]
                               for i in rows.tolist()])
            x, level, step = self._as_context(z[:, :-1], eps)
            with m.autocast():
                m.dit(self._with_prior(x, None if prior is None else prior[:, :-1]), level, step, feats[:, :-1].to(x.dtype),
                      torch.arange(s - 1, device=dev).expand(r, s - 1), part, write=s - 1)
        self.cache.scatter(rows, part)
        if prior is not None:
            self.pending_prior[rows] = prior[:, -1]
        self.last_frame[rows] = frames[:, -1]
        if self.carry is not None:
            self.carry.reset(rows, frames[:, -1], m.decode(z[:, -1]))
        self.pending_feats[rows] = feats[:, -1]
        self.time[rows] = s - 1
        self.latents[rows] = z[:, -1:].expand(r, 2, *z.shape[2:])
        self.pitch[rows] = p
        self.view[rows] = views[:, -1]
        if self.memory is not None:  # the start frames only camera turns lead from to the last one
            camera_only = (flat[..., self.keys_only] == 0).all(-1) & (known > 0)
            kept = torch.ones(r, s, dtype=torch.bool, device=dev)
            if s > 1:
                kept[:, :-1] = camera_only[:, 1:].flip(1).cumprod(1).flip(1).bool()
            self.memory.reset(rows, z, frames, views, kept)

    @torch.no_grad()
    def step(self, flat_actions: np.ndarray | torch.Tensor) -> Dreamed:
        """Advance every dream by one frame under flat actions (B, A): the new frames and the heads' outcomes."""
        m = self.model
        a = _tensor(flat_actions, self.time.device)
        if a.shape != (len(self.time), m.codec.dim):
            raise ValueError(f"actions must be (B, A) = ({len(self.time)}, {m.codec.dim}), got {tuple(a.shape)}")
        feats = m.codec.features(a)
        cam = m.codec.slices.get("camera")
        pitch = self.pitch if cam is None else (self.pitch + a[:, cam.start]).clamp(-m.cfg.pitch_limit, m.cfg.pitch_limit)
        view = self._view_turn(a, pitch, cam)
        seen = self.view.clone()
        if cam is not None:
            seen += view[:, cam]
            seen[:, 0] = torch.where(torch.isnan(pitch), seen[:, 0], pitch)
        camera_only = (a[:, self.keys_only] == 0).all(-1)
        prior = None
        if m.prior is not None:
            z_from, frame_from, turn, pitch_from = self.pending, self.last_frame, view, self.pitch
            if self.memory is not None:  # the remembered frame of the closest view, turned by what is left
                z_from, frame_from, view_from = self.memory.source(seen, camera_only)
                turn = view.clone()
                turn[:, cam] = seen - view_from
                turn[:, cam.start + 1] = torch.remainder(turn[:, cam.start + 1] + 180.0, 360.0) - 180.0
                pitch_from = torch.where(torch.isnan(self.pitch), self.pitch, view_from[:, 0])
            prior = self._noised(m.prior.follow(z_from, frame_from, turn, pitch_from), range(len(a)))
        z = self._generate(feats, prior)
        idle = (a == self.noop).all(-1)  # the player did nothing: what the dream changes by less than its noise stays
        if m.cfg.sampler.still_latent > 0 and bool(idle.any()):
            kept = ((z - self.pending).abs() < m.cfg.sampler.still_latent) & idle[:, None, None, None]
            z = torch.where(kept, self.pending, z)
        frames = m.decode(z)
        if self.carry is not None:
            move = m.prior.pixel_shift(view) if m.prior is not None else (torch.zeros(len(a), device=a.device),) * 2
            frames = self.carry(frames, *move, idle=idle)
        self.latents = torch.stack([self.pending, z], dim=1)
        events, terminated = m.outcome(self.latents[:, 0], z, feats)
        self.pending_feats, self.pending_prior, self.last_frame = feats, prior, frames
        self.time = self.time + 1
        self.pitch, self.view = pitch, seen
        if self.memory is not None:
            self.memory.push(z, frames, seen, camera_only)
        return Dreamed(frames.cpu().numpy(), events.cpu().numpy(), terminated.cpu().numpy())

    def _start_views(self, pitch: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """The view [pitch, yaw] (R, S, 2) of every start frame: yaw counted back from 0 at the last frame through
        the camera actions (R, S, A), pitch from the last frame's (R,) (level where unknown)."""
        cam = self.model.codec.slices.get("camera")
        r, s = flat.shape[:2]
        out = torch.zeros(r, s, 2, device=flat.device)
        level = torch.nan_to_num(pitch, nan=0.0)
        out[:, :, 0] = level[:, None]
        if cam is not None and s > 1:
            out[:, :-1, 0] = self._start_pitches(level, flat)
            out[:, :-1, 1] = -flat[:, 1:, cam.start + 1].flip(1).cumsum(1).flip(1)
        return out

    def _start_pitches(self, pitch: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """The pitch (R, S-1) of every start frame but the last, counted back from the last one's (R,) through the
        camera actions after it (R, S, A): what the rotation prior turns each from. NaN where unknown."""
        cam = self.model.codec.slices.get("camera")
        if cam is None or flat.shape[1] < 2:
            return pitch[:, None].expand(len(pitch), max(flat.shape[1] - 1, 0))
        after = flat[:, 1:, cam.start].flip(1).cumsum(1).flip(1)  # pitch turned from frame k to the last frame
        return pitch[:, None] - after

    def _view_turn(self, a: torch.Tensor, pitch: torch.Tensor, cam: slice | None) -> torch.Tensor:
        """The actions a (B, A) with the camera's pitch as far as the view turns: the game stops the pitch at its
        clamp, so a prior moved by the whole action would move the picture where the game's stays put. Rows whose
        pitch is unknown (NaN) keep their action."""
        known = ~torch.isnan(self.pitch)
        if cam is None or not bool(known.any()):
            return a
        out = a.clone()
        out[known, cam.start] = (pitch - self.pitch)[known].to(a.dtype)
        return out

    def _noised(self, prior: torch.Tensor, rows) -> torch.Tensor:
        """Motion priors (R, ...) of dreams `rows` noised as a frame is to signal 1 - `SamplerConfig.prior_noise`,
        each row's noise from its own generator (training does the same: `training.objective.noised_prior`)."""
        noise = self.model.cfg.sampler.prior_noise
        if noise <= 0:
            return prior
        eps = torch.stack([torch.randn(prior.shape[1:], generator=self.generators[i], device=prior.device) for i in rows])
        signal = torch.full((len(prior), 1), 1 - noise, device=prior.device)
        return shortcut.mix(prior.reshape(len(prior), 1, -1, 1, 1), eps.reshape(len(prior), 1, -1, 1, 1),
                            signal).reshape(prior.shape)

    def _as_context(self, z: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Finished frames z (B, F, C, h, w) as a dream's context is fed: corrupted to signal 1 - context_noise with
        noise eps, at the smallest step size. Returns the input (in the network's dtype), levels and step indices."""
        m = self.model
        level = torch.full(z.shape[:2], 1 - m.cfg.sampler.context_noise, device=z.device)
        step = torch.full(z.shape[:2], m.cfg.dit.step_levels, dtype=torch.long, device=z.device)
        return shortcut.mix(z.float(), eps.float(), level), level, step

    def _with_prior(self, x: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """The network's input: frames x (B, F, C, h, w) and, for a model with the motion prior, their priors."""
        return x if prior is None else torch.cat([x, prior.to(x.dtype)], dim=2)

    def _generate(self, feats: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """The next latent frame (B, C, h, w): `steps` shortcut steps of size 1/steps from noise under the new
        action's features (and the new frame's prior). The first pass also carries the pending frame into the
        cache (with its features, prior and context noise), so a finished frame costs no pass of its own."""
        m, steps, time = self.model, self.steps, self.time
        shape = self.latents.shape[2:]
        noise = torch.stack([torch.randn((2, *shape), generator=g, device=time.device) for g in self.generators])
        x_ctx, l_ctx, s_ctx = self._as_context(self.pending[:, None], noise[:, :1])
        x_ctx = self._with_prior(x_ctx, None if self.pending_prior is None else self.pending_prior[:, None])
        new_prior = None if prior is None else prior[:, None]
        step = torch.full_like(time, shortcut.step_index(steps, m.cfg.dit.step_levels))
        z = noise[:, 1]
        for n in range(steps):
            level = torch.full((len(z),), n / steps, device=z.device)
            x = self._with_prior(z[:, None], new_prior)
            with m.autocast():
                if n == 0:  # the pending frame and the new one in one pass; the pending frame is written
                    x_hat = m.dit(torch.cat([x_ctx, x], 1), torch.cat([l_ctx, level[:, None]], 1),
                                  torch.cat([s_ctx, step[:, None]], 1), torch.stack([self.pending_feats, feats], 1),
                                  torch.stack([time, time + 1], 1), self.cache, write=1)[:, 1]
                else:
                    x_hat = m.dit(x, level[:, None], step[:, None], feats[:, None], (time + 1)[:, None], self.cache)[:, 0]
            z = shortcut.advance(z, x_hat.float(), level, steps)
        return z


def _tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Flat actions as a float32 tensor on the model's device (one conversion)."""
    return x.float().to(device) if torch.is_tensor(x) else torch.tensor(np.asarray(x, np.float32), device=device)


def dream(model: WorldModel, frames: np.ndarray, actions: np.ndarray, steps: int | None = None,
          seed: int = 0) -> np.ndarray:
    """An open-loop dream of one clip: start from its first `start_frames` real frames (T, H, W, 3) and the
    actions between them, replay the flat actions (T-1, A) after; returns the T - start_frames dreamed frames."""
    k = model.start_frames
    s = Sampler(model, frames[None, :k], actions[None, : k - 1], steps=steps, seeds=[seed])
    return np.stack([s.step(actions[None, t - 1]).frames[0] for t in range(k, len(frames))])
