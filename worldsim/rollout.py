"""Autoregressive dreaming: keep the last K latent frames and actions, generate the next frame, slide the window."""

from __future__ import annotations

import numpy as np
import torch

from worldsim.world_model import WorldModel


class Dreamer:
    """A batch of B dreams advancing in lockstep: one batched model call per denoising step for all of them."""

    def __init__(self, model: WorldModel, frames: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor | None = None,
                 steps: int | None = None, seed: int | None = None, pitch: np.ndarray | torch.Tensor | None = None):
        """frames: (B, K, H, W, 3) uint8 real context; actions: (B, K-1, A) flat, actions[:, i] led frames[:, i] to
        frames[:, i+1] (None: unknown). The first frame of a context has no known action leading into it.
        pitch: (B, K) the view's pitch at each context frame in degrees (None or NaN: unknown); the dream carries it
        on through the camera actions (`WorldModel.pitch_after`)."""
        self.model = model
        self.steps = steps
        dev = model.latent_mean.device
        frames = torch.as_tensor(np.array(frames), device=dev)
        if frames.ndim != 5 or frames.shape[1] != model.context or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"context frames must be uint8 (B, {model.context}, H, W, 3), got {tuple(frames.shape)} {frames.dtype}")
        b, k = frames.shape[:2]
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
        with torch.no_grad():
            self.latents = model.encode(frames)
        self.last_frame = frames[:, -1]  # the pixel-space motion prior moves these (SamplerConfig.pixel_prior)
        self.actions = torch.zeros(b, k, model.codec.dim, device=dev)
        self.known = torch.zeros(b, k, device=dev)
        if actions is not None:
            actions = torch.as_tensor(np.asarray(actions, np.float32), device=dev)
            if actions.shape != (b, k - 1, model.codec.dim):
                raise ValueError(f"context actions must be (B, {k - 1}, {model.codec.dim}), got {tuple(actions.shape)}")
            self.actions[:, 1:] = actions
            self.known[:, 1:] = 1.0
        self.pitch = torch.full((b, k), float("nan"), device=dev)
        if pitch is not None:
            pitch = torch.as_tensor(np.asarray(pitch, np.float32), device=dev)
            if pitch.shape != (b, k):
                raise ValueError(f"context pitch must be (B, K) = ({b}, {k}) degrees, got {tuple(pitch.shape)}")
            self.pitch[:] = pitch

    @torch.no_grad()
    def step(self, flat_actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Advance every dream by one frame under (B, A) flat actions; returns the new frames (B, H, W, 3) uint8."""
        return Dreamer.step_many([self], flat_actions)

    @staticmethod
    @torch.no_grad()
    def step_many(dreams: list[Dreamer], flat_actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Advance several Dreamers with one batched model call per denoising step. Each draws its noise from
        its own generator, so a dream's frames do not depend on which others share the batch."""
        m = dreams[0].model
        dev = dreams[0].latents.device
        a = torch.as_tensor(np.array(flat_actions, np.float32), device=dev)
        noise = [m.draw_noise(len(d.latents), d.generator) for d in dreams]
        cat = lambda xs: torch.cat(xs, dim=0)  # noqa: E731
        z = m.predict_next(cat([d.latents for d in dreams]), cat([d.actions for d in dreams]), cat([d.known for d in dreams]),
                           a, steps=dreams[0].steps, noise=(cat([n[0] for n in noise]), cat([n[1] for n in noise])),
                           context_pitch=cat([d.pitch for d in dreams]), last_frame=cat([d.last_frame for d in dreams]))
        frames = m.decode(z)
        if m.cfg.sampler.reencode:
            z = m.encode(frames)
        i = 0
        for d in dreams:
            b = len(d.latents)
            d.latents = torch.cat([d.latents[:, 1:], z[i:i + b, None]], dim=1)
            d.last_frame = frames[i:i + b]
            d.actions = torch.cat([d.actions[:, 1:], a[i:i + b, None]], dim=1)
            d.known = torch.cat([d.known[:, 1:], torch.ones_like(d.known[:, :1])], dim=1)
            d.pitch = torch.cat([d.pitch[:, 1:], m.pitch_after(d.pitch[:, -1], a[i:i + b])[:, None]], dim=1)
            i += b
        return frames.cpu().numpy()


def dream_episode(model: WorldModel, frames: np.ndarray, actions: np.ndarray, steps: int | None = None,
                  seed: int = 0, pitch: np.ndarray | None = None) -> np.ndarray:
    """Open-loop dream of one real clip: context = frames[:K] (with actions[:K-1]), then actions[K-1:] replayed.

    frames (T+1, H, W, 3) and flat actions (T, A) as in a dataset episode (K = `model.start_frames`) (pitch: the frames' view pitch, when
    known); returns (T+1-K, H, W, 3) dreamed frames aligned with frames[K:].
    """
    k = model.start_frames
    d = make_dreamer(model, frames[None, :k], actions[None, :k - 1], steps=steps, seed=seed,
                     pitch=None if pitch is None else np.asarray(pitch)[None, :k])
    return np.stack([d.step(actions[None, t])[0] for t in range(k - 1, len(actions))])


def make_dreamer(model: WorldModel, frames, actions=None, steps: int | None = None, seed: int | None = None, pitch=None):
    """The batched dreamer of the model's generation: `Dreamer` (the first model) or `SpaceTimeDreamer`."""
    cls = SpaceTimeDreamer if model.cfg.generation == 2 else Dreamer
    return cls(model, frames, actions, steps=steps, seed=seed, pitch=pitch)


class SpaceTimeDreamer:
    """A batch of B dreams of a space-time model (generation 2), each with its own rolling cache of past frames.

    A frame's keys/values enter the cache once, when it is done (at the context signal level), fused with the
    first denoising step of the frame after it; every further step costs one frame. So a new frame costs the
    same whatever the context length. Rows are independent: `reset_rows` restarts some dreams while the others go
    on, and each row draws its noise from its own generator, so a dream does not depend on its batch mates."""

    def __init__(self, model: WorldModel, frames: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor | None = None,
                 steps: int | None = None, seed: int | None = None, pitch: np.ndarray | torch.Tensor | None = None,
                 seeds: list[int] | None = None):
        """frames (B, S, H, W, 3) uint8 real frames to start from (S >= 1), actions (B, S-1, A) flat (None:
        unknown); seeds: one per row (default: seed, seed+1, ...). `pitch` is accepted for the first model's
        interface and not used: this model keeps the view in its context."""
        self.model = model
        self.steps = steps or model.cfg.sampler.steps
        dev = model.latent_mean.device
        b = len(frames)
        self.cache = model.dit.new_cache(b, dev)
        c, (h, w) = model.cfg.ae.latent_channels, model.cfg.latent_hw
        self.pending_feats = torch.zeros(b, model.codec.dim + 1, device=dev)
        self.time = torch.zeros(b, dtype=torch.int64, device=dev)  # the pending frame's time stamp
        # the last two frames (the outcome heads read them); the newest is not in the cache yet (`pending`)
        self.latents = torch.zeros(b, 2, c, h, w, device=dev)
        # with the motion prior: the pending frame's prior (it enters the cache with it) and the newest pixels
        self.pending_prior = torch.zeros(b, c, h, w, device=dev) if model.cfg.motion_prior else None
        self.last_frame = torch.zeros(b, *model.cfg.frame_hw, 3, dtype=torch.uint8, device=dev)
        self.pitch = torch.full((b, 1), float("nan"), device=dev)
        if seeds is None:
            base = int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
            seeds = [base + i for i in range(b)]
        self.generators = [torch.Generator(device=dev) for _ in range(b)]
        for g, s in zip(self.generators, seeds):
            g.manual_seed(int(s))
        self.reset_rows(torch.arange(b, device=dev), frames, actions)

    @property
    def pending(self) -> torch.Tensor:
        """The newest frame of every dream (B, C, h, w): it enters the cache with the next frame's first step."""
        return self.latents[:, 1]

    @torch.no_grad()
    def reset_rows(self, rows: torch.Tensor | list[int], frames: np.ndarray | torch.Tensor,
                   actions: np.ndarray | torch.Tensor | None, seeds: list[int] | None = None) -> None:
        """Restart dreams `rows` from real frames (R, S, H, W, 3) and the actions between them (R, S-1, A)."""
        m = self.model
        dev = self.time.device
        rows = torch.as_tensor(rows, dtype=torch.long, device=dev)
        frames = torch.as_tensor(np.array(frames), device=dev)
        r, s = frames.shape[:2]
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8 or r != len(rows) or s < 1 \
                or tuple(frames.shape[2:4]) != m.cfg.frame_hw:
            raise ValueError(f"start frames must be uint8 (R={len(rows)}, S, {m.cfg.frame_hw[0]}, {m.cfg.frame_hw[1]}, 3), "
                             f"got {tuple(frames.shape)} {frames.dtype}")
        if s > m.context:
            raise ValueError(f"a dream starts from at most {m.context} frames (the model's context), got {s}")
        flat = torch.zeros(r, s, m.codec.dim, device=dev)
        known = torch.zeros(r, s, device=dev)
        if actions is not None and s > 1:
            a = torch.as_tensor(np.asarray(actions, np.float32), device=dev)
            if a.shape != (r, s - 1, m.codec.dim):
                raise ValueError(f"start actions must be (R, S-1, A) = ({r}, {s - 1}, {m.codec.dim}), got {tuple(a.shape)}")
            flat[:, 1:], known[:, 1:] = a, 1.0
        if seeds is not None:
            for i, sd in zip(rows.tolist(), seeds):
                self.generators[i].manual_seed(int(sd))
        z = m.encode(frames)
        feats = m.action_features(flat, known)
        prior = None
        if m.cfg.motion_prior:  # each start frame's prior: the frame before it moved by the action between them
            moved = torch.zeros_like(z)
            if s > 1:
                moved[:, 1:] = m.moved_latents(frames[:, :-1].reshape(-1, *frames.shape[2:]),
                                               flat[:, 1:].reshape(-1, flat.shape[-1])).reshape(r, s - 1, *z.shape[2:])
            prior = m.sequence_prior(moved, flat, known)  # as training makes it from the latent cache
        part = self.cache.subset(rows)
        part.clear_rows(torch.arange(r, device=dev))
        if s > 1:  # every start frame but the last goes into the cache now; the last joins the first step
            eps = torch.stack([torch.randn(z.shape[1:], generator=self.generators[i], device=dev)[: s - 1]
                               for i in rows.tolist()])
            m.commit(z[:, :-1], eps, feats[:, :-1], torch.arange(s - 1, device=dev).expand(r, s - 1), part,
                     prior=None if prior is None else prior[:, :-1])
        self.cache.scatter(rows, part)
        if prior is not None:
            self.pending_prior[rows] = prior[:, -1]
        self.last_frame[rows] = frames[:, -1]
        self.pending_feats[rows] = feats[:, -1]
        self.time[rows] = s - 1
        self.latents[rows] = z[:, -1:].expand(r, 2, *z.shape[2:])

    @torch.no_grad()
    def step(self, flat_actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Advance every dream by one frame under (B, A) flat actions; returns the new frames (B, H, W, 3) uint8."""
        m = self.model
        dev = self.time.device
        a = torch.as_tensor(np.asarray(flat_actions, np.float32), device=dev)
        if a.shape != (len(self.time), m.codec.dim):
            raise ValueError(f"actions must be (B, A) = ({len(self.time)}, {m.codec.dim}), got {tuple(a.shape)}")
        shape = self.latents.shape[2:]
        noise = torch.stack([torch.randn((2, *shape), generator=g, device=dev) for g in self.generators])
        feats = m.action_features(a)
        prior = m.pixel_prior(self.last_frame, a) if m.cfg.motion_prior else None
        z = m.generate(self.pending, noise[:, 0], self.pending_feats, noise[:, 1], feats, self.time, self.cache, self.steps,
                       pending_prior=self.pending_prior, prior=prior)
        frames = m.decode(z)
        if m.cfg.sampler.reencode:
            z = m.encode(frames)
        self.latents = torch.stack([self.pending, z], dim=1)
        self.pending_feats, self.pending_prior, self.last_frame = feats, prior, frames
        self.time = self.time + 1
        return frames.cpu().numpy()

    @staticmethod
    def step_many(dreams: list[SpaceTimeDreamer], flat_actions: torch.Tensor | np.ndarray) -> np.ndarray:
        """Advance several batches of dreams (each keeps its own cache)."""
        out, i = [], 0
        for d in dreams:
            b = len(d.time)
            out.append(d.step(np.asarray(flat_actions)[i:i + b]))
            i += b
        return np.concatenate(out)
