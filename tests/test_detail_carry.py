"""Detail carry: a dream keeps the real frames' pixel detail its latents do not hold, moves it with the camera and
drops it where the decoded picture changes (`worldsim.sampling.detail`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import worldsim
from worldsim.sampling.detail import DetailCarry
from worldsim.sampling.sampler import Sampler


def _frames(seed: int, n: int, hw: tuple[int, int] = (16, 16)) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).integers(0, 256, (n, *hw, 3), dtype=np.uint8))


def test_an_unchanged_picture_keeps_the_real_detail_a_changed_one_drops_it_and_a_turn_moves_it():
    real, decoded = _frames(0, 2), _frames(1, 2)
    carry = DetailCarry(2, (16, 16), change_scale=0.15)
    carry.reset(torch.arange(2), real, decoded)
    still = torch.zeros(2)
    for _ in range(5):  # the latents decode to the same picture: the real frames come back exactly
        assert torch.equal(carry(decoded, still, still), real)
    changed = decoded.clone()
    changed[:, :8] += 128  # the top half redrawn: every value moves by 128 (mod 256), far over the scale
    out = carry(changed, still, still).int()
    assert torch.equal(out[:, :8], changed[:, :8].int())  # redrawn: the latent alone, no stale texture
    assert torch.equal(out[:, 8:], real[:, 8:].int())  # the rest keeps its detail

    carry.reset(torch.arange(2), real, decoded)
    moved = torch.roll(decoded, 2, dims=2)  # the picture moved 2 pixels right, as a camera turn moves it
    out = carry(moved, torch.zeros(2), torch.full((2,), 2.0)).int()
    assert torch.equal(out[:, :, 2:], torch.roll(real, 2, dims=2)[:, :, 2:].int())  # the detail moved with it
    assert torch.equal(out[:, :, :2], moved[:, :, :2].int())  # the revealed strip has none
    with pytest.raises(ValueError, match="detail_carry"):
        DetailCarry(1, (16, 16), change_scale=0.0)


def test_a_change_within_the_dreams_noise_keeps_the_shown_pixel_and_a_slow_one_still_adds_up():
    """`still_below`, on steps the player does nothing: sampling noise (a few levels) leaves the real frame shown
    exactly; a fade of one level a step appears once it has added up to the threshold (the reference stays put);
    a redrawn region is redrawn; and a step with an action shows the noise."""
    real, decoded = _frames(0, 1), _frames(1, 1).clamp(40, 200)
    carry = DetailCarry(1, (16, 16), change_scale=0.15, still_below=6)
    carry.reset(torch.arange(1), real, decoded)
    still, idle = torch.zeros(1), torch.ones(1, dtype=torch.bool)
    noise = torch.tensor(np.random.default_rng(2).integers(-5, 6, decoded.shape))
    for _ in range(3):
        assert torch.equal(carry((decoded.int() + noise).to(torch.uint8), still, still, idle), real)
    shown = [carry((decoded.int() + t).to(torch.uint8), still, still, idle) for t in range(1, 9)]
    assert all(torch.equal(f, real) for f in shown[:5])  # +1 ... +5 levels: within the noise
    assert (shown[5].int() - real.int()).float().mean() > 4  # +6: the fade appears, the detail kept on top of it
    redrawn = decoded.clone()
    redrawn[:, :8] += 100  # every value moves by 100 (mod 256)
    out = carry(redrawn, still, still, idle).int()
    assert torch.equal(out[:, :8], redrawn[:, :8].int())
    carry.reset(torch.arange(1), real, decoded)
    acted = carry((decoded.int() + noise).to(torch.uint8), still, still, ~idle)
    assert (acted != real).float().mean() > 0.5  # a key pressed: the change is shown
    with pytest.raises(ValueError, match="still_below"):
        DetailCarry(1, (16, 16), change_scale=0.15, still_below=-1)


def test_a_standing_dream_holds_the_real_frame_through_its_sampling_noise_and_a_key_lets_it_change(tiny_ckpt):
    """Through the sampler: the dynamics model redraws the latent with a little noise each step; with nothing
    pressed the dream shows the real start frame exactly, with a key held it shows the redrawn picture."""
    m = worldsim.load(tiny_ckpt, "cpu", "fp32")
    m.cfg.sampler.detail_carry, m.cfg.sampler.still_below, m.cfg.sampler.still_latent = 0.4, 16.0, 0.0
    frames = np.stack([np.random.default_rng(3).integers(0, 256, (3, *m.cfg.frame_hw, 3), dtype=np.uint8)])
    shown = {}
    for key in ("none", "forward"):
        s = Sampler(m, frames, seeds=[0])
        noise = torch.Generator().manual_seed(1)
        s._generate = lambda feats, prior, s=s, g=noise: s.pending + 0.01 * torch.randn(s.pending.shape, generator=g)
        act = m.codec.noop()
        if key != "none":
            act[key] = 1
        flat = m.codec.encode(act)[None]
        shown[key] = [s.step(flat).frames[0] for _ in range(5)]
    assert all(np.array_equal(f, frames[0, -1]) for f in shown["none"])
    assert not any(np.array_equal(f, frames[0, -1]) for f in shown["forward"])


def test_a_dream_that_stands_still_shows_the_real_frame_not_its_autoencoder_reconstruction(tiny_ckpt):
    """With the dynamics model holding the latent still, the dream's frames are the real start frame itself;
    without the carry they are the autoencoder's reconstruction of it."""
    shown = {}
    for carry in (0.15, 0.0):
        m = worldsim.load(tiny_ckpt, "cpu", "fp32")
        m.cfg.sampler.detail_carry = carry
        frames = np.stack([np.random.default_rng(3).integers(0, 256, (3, *m.cfg.frame_hw, 3), dtype=np.uint8)])
        s = Sampler(m, frames, seeds=[0])
        s._generate = lambda feats, prior, s=s: s.pending.clone()  # the dynamics model keeps the latent as it is
        noop = np.zeros((1, m.codec.dim), np.float32)
        shown[carry] = [s.step(noop).frames[0] for _ in range(10)]
        reconstruction = m.decode(m.encode(torch.tensor(frames[:, -1]))).numpy()[0]
    assert all(np.array_equal(f, frames[0, -1]) for f in shown[0.15])
    assert all(np.array_equal(f, reconstruction) for f in shown[0.0])
    assert not np.array_equal(reconstruction, frames[0, -1])


def test_a_standing_dreams_latents_stay_exact_copies_and_a_larger_change_or_a_key_passes(tiny_ckpt):
    """`still_latent`: with nothing pressed, elements the dynamics model moves by less than the threshold keep the
    frame before's value (a standing dream's past holds exact copies, as a real one does); elements moved by more,
    and every element on a step with a key held, take the new value."""
    m = worldsim.load(tiny_ckpt, "cpu", "fp32")
    m.cfg.sampler.still_latent = 0.2
    frames = np.stack([np.random.default_rng(3).integers(0, 256, (3, *m.cfg.frame_hw, 3), dtype=np.uint8)])
    for key in ("none", "forward"):
        s = Sampler(m, frames, seeds=[0])
        start = s.pending.clone()
        step = torch.zeros_like(start).uniform_(-0.15, 0.15, generator=torch.Generator().manual_seed(1))
        step.view(-1)[:7] = 0.5  # a few elements move for real
        s._generate = lambda feats, prior, s=s, step=step: s.pending + step
        act = m.codec.noop()
        if key != "none":
            act[key] = 1
        s.step(m.codec.encode(act)[None])
        moved = (s.pending != start).view(-1)
        if key == "none":
            assert moved[:7].all() and not moved[7:].any()
        else:
            assert moved.float().mean() > 0.99
