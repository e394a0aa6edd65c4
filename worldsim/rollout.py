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

    frames (T+1, H, W, 3) and flat actions (T, A) as in a dataset episode (pitch: the frames' view pitch, when
    known); returns (T+1-K, H, W, 3) dreamed frames aligned with frames[K:].
    """
    k = model.context
    d = Dreamer(model, frames[None, :k], actions[None, :k - 1], steps=steps, seed=seed,
                pitch=None if pitch is None else np.asarray(pitch)[None, :k])
    return np.stack([d.step(actions[None, t])[0] for t in range(k - 1, len(actions))])
