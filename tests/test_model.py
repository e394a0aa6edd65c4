"""The model's parts on the tiny preset: the space-time transformer and its cache, the shortcut objective and
sampler, the action features, the motion prior, configs and the numerics a model picks."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch

import worldsim
from worldsim.envs.actions import minerl_action_space
from worldsim.envs.indev.env import INDEV_KEYS
from worldsim.model import shortcut
from worldsim.model.actions import space_to_json
from worldsim.model.config import DiTConfig, ModelConfig, field_docs
from worldsim.model.transformer import SpaceTimeTransformer, rope2d
from worldsim.model.world_model import WorldModel, fastest_precision
from worldsim.sampling.sampler import Sampler
from worldsim.training.config import PRESETS, TrainConfig, preset


def _net(context: int = 5) -> SpaceTimeTransformer:
    torch.manual_seed(0)
    cfg = DiTConfig(width=64, depth=4, heads=2, patch=2, action_hidden=32, time_every=2, step_levels=3)
    net = SpaceTimeTransformer(cfg, 4, (8, 8), context=context, cond_dim=7).eval()
    with torch.no_grad():  # away from the zero init, so the output depends on every layer
        for p in net.parameters():
            p.normal_(0.0, 0.1 if p.dim() > 1 else 0.05)
    return net


def _inputs(b: int, f: int):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, f, 4, 8, 8, generator=g), torch.rand(b, f, generator=g),
            torch.randint(0, 4, (b, f), generator=g), torch.randn(b, f, 7, generator=g))


def tiny_model(seed: int = 0, **changes) -> WorldModel:
    torch.manual_seed(seed)
    cfg = preset("tiny").model
    cfg.action_space_json = space_to_json(minerl_action_space(INDEV_KEYS))
    for k, v in changes.items():
        setattr(cfg, k, v)
    m = WorldModel(cfg).eval()
    with torch.no_grad():
        for p in m.dit.parameters():  # break the zero-init so outputs depend on everything
            p.add_(torch.randn_like(p) * 0.05)
    return m


def test_steering_moves_where_a_query_looks_by_its_offset():
    """Space layers' 2D rotary positions: a score depends only on where the query sits relative to the key, so a
    query at patch p with offset (0, 1) scores every key as the query at p + (0, 1) does; a steered model's output
    depends on the offset (its gradient reaches the steering layer from the zero start)."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(32, generator=g), torch.randn(32, generator=g)

    def score(pq, pk):
        return float(rope2d(q, torch.tensor(pq)) @ rope2d(k, torch.tensor(pk)))

    for pk in [(0.0, 0.0), (2.0, 5.0), (7.0, 1.0)]:
        assert score((3.0, 3.0 + 1.0), pk) == pytest.approx(score((3.0, 4.0), pk), abs=1e-4)
        assert score((3.0, 4.5), pk) == pytest.approx(score((3.0 + 2, 4.5 - 3), (pk[0] + 2, pk[1] - 3)), abs=1e-4)
    assert score((3.0, 4.0), (3.0, 4.0)) != pytest.approx(score((3.0, 5.0), (3.0, 4.0)), abs=1e-3)

    net = _net()
    z, level, step, cond = _inputs(2, 3)
    steer = [blk.steer for blk in net.blocks if blk.steer is not None]
    assert steer and all(blk.steer is None for blk in net.blocks if blk.time)
    for lin in steer:
        torch.nn.init.zeros_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
    out = net(z, level, step, cond)
    out.pow(2).mean().backward()
    assert all(lin.weight.grad.abs().sum() > 0 for lin in steer)
    with torch.no_grad():
        steer[0].bias.fill_(1.0)
        assert not torch.allclose(net(z, level, step, cond), out, atol=1e-4)


@torch.no_grad()
def test_the_cache_gives_the_frames_of_a_full_forward_beyond_the_context():
    """Frames fed one (or two) at a time through the rolling cache give what one pass over the whole sequence gives,
    for sequences three times the context, at any time offset (rotary time: only differences count). fp32: the
    tolerance is float rounding of a different summation order."""
    net = _net(context=5)
    b, f = 3, 15
    z, level, step, feats = _inputs(b, f)
    full = net(z, level, step, feats)
    for offset in (0, 10**7):
        cache = net.new_cache(b, "cpu")
        out = [net(z[:, t:t + 1], level[:, t:t + 1], step[:, t:t + 1], feats[:, t:t + 1],
                   torch.full((b, 1), t + offset), cache, write=1) for t in range(f)]
        assert torch.allclose(torch.cat(out, 1), full, atol=1e-4), offset
    # a rollout's calls: the newest finished frame written together with the next one, which is not written
    cache = net.new_cache(b, "cpu")
    net(z[:, :1], level[:, :1], step[:, :1], feats[:, :1], torch.zeros(b, 1, dtype=torch.long), cache, write=1)
    for t in range(1, f - 1):
        sl = slice(t, t + 2)
        two = net(z[:, sl], level[:, sl], step[:, sl], feats[:, sl], torch.arange(t, t + 2).expand(b, 2), cache, write=1)
        assert torch.allclose(two, full[:, sl], atol=1e-4), t


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile builds its kernels with a C++ compiler")
@torch.no_grad()
def test_compiled_dream_steps_give_the_eager_frames():
    """`compile` fuses a dream's calls (1 or 2 frames against the cache) and changes nothing but rounding: the same
    rollout compiled and eager agrees (fp32, measured ~1e-6; tolerance as the cache test's). A copy of the module
    compiles its own network rather than calling the original's."""
    net = _net(context=5)
    b, f = 2, 8
    z, level, step, feats = _inputs(b, f)

    def rollout(module):
        cache = module.new_cache(b, "cpu")
        module(z[:, :3], level[:, :3], step[:, :3], feats[:, :3], torch.arange(3).expand(b, 3), cache, write=3)
        out = []
        for t in range(3, f - 1):
            sl = slice(t, t + 2)
            out.append(module(z[:, sl], level[:, sl], step[:, sl], feats[:, sl], torch.arange(t, t + 2).expand(b, 2),
                              cache, write=1))
            out.append(module(z[:, t + 1:t + 2], level[:, t + 1:t + 2], step[:, t + 1:t + 2], feats[:, t + 1:t + 2],
                              torch.full((b, 1), t + 1), cache))
        return torch.cat(out, 1)

    eager = rollout(net)
    twin = copy.deepcopy(net)
    net.compile()
    fused = rollout(net)
    assert net._fn is not None and twin._fn is None
    assert torch.allclose(fused, eager, atol=1e-4)
    assert copy.deepcopy(net)._fn is None


@torch.no_grad()
def test_time_is_causal_and_rows_of_the_cache_are_independent():
    net = _net()
    z, level, step, feats = _inputs(2, 6)
    full = net(z, level, step, feats)
    later = z.clone()
    later[:, 4:] += 1.0
    assert torch.allclose(net(later, level, step, feats)[:, :4], full[:, :4], atol=1e-5)  # the future is unseen
    cache = net.new_cache(2, "cpu")
    for t in range(3):
        net(z[:, t:t + 1], level[:, t:t + 1], step[:, t:t + 1], feats[:, t:t + 1], torch.full((2, 1), t), cache, write=1)
    part = cache.subset(torch.tensor([1]))  # row 1 restarts from frame 0, row 0 goes on
    part.clear_rows(torch.tensor([0]))
    net(z[1:, :1], level[1:, :1], step[1:, :1], feats[1:, :1], torch.zeros(1, 1, dtype=torch.long), part, write=1)
    cache.scatter(torch.tensor([1]), part)
    times = torch.tensor([[3], [1]])
    pick = torch.tensor([3, 1])
    out = net(z[torch.arange(2), pick][:, None], level[torch.arange(2), pick][:, None], step[torch.arange(2), pick][:, None],
              feats[torch.arange(2), pick][:, None], times, cache)
    assert torch.allclose(out[0, 0], full[0, 3], atol=1e-4)
    assert torch.allclose(out[1, 0], net(z[1:, :2], level[1:, :2], step[1:, :2], feats[1:, :2])[0, 1], atol=1e-4)


def test_shortcut_levels_lie_where_the_sampler_steps():
    g = torch.Generator().manual_seed(0)
    level, step, boot = shortcut.draw_levels(4000, 8, 4, 0.25, 0.5, 0.8, g)
    d = 2.0 ** -step.float()
    assert boot.any() and (~boot).any()
    on_grid = torch.isclose(level / d, torch.round(level / d), atol=1e-5)
    assert on_grid[boot].all() and (step[boot] < 4).all()  # bootstrap frames: a larger step, a level it visits
    assert (level[boot] <= 1 - d[boot] + 1e-6).all()
    assert ((level[~boot] >= 0.8) | on_grid[~boot]).all() and (step[~boot] == 4).all()
    assert (level == 0).float().mean() > 0.05  # every sampled frame starts from pure noise
    assert ((level > 0.8) & (step == 4)).float().mean() > 0.15  # rollout-like context frames
    with pytest.raises(ValueError, match="power of two"):
        shortcut.step_index(3, 4)


def test_the_sampler_lands_on_the_prediction():
    """With any number of steps of size 1/n from noise, each step moves toward the prediction, and the last step
    lands exactly on the network's clean-frame prediction."""
    target = torch.randn(2, 4, 8, 8)
    for steps in (1, 2, 4):
        z = torch.randn(2, 4, 8, 8)
        for n in range(steps):
            before = (z - target).norm()
            z = shortcut.advance(z, target, torch.full((2,), n / steps), steps)
            assert (z - target).norm() < before
        assert torch.allclose(z, target, atol=1e-5)


def test_self_forcing_inputs_are_noised_while_the_real_frames_stay_the_target():
    """shortcut.loss(inputs=...) noises the given inputs and scores the prediction against x: a network that
    returns its (clean) input scores zero loss on clean frames only when the inputs are x itself."""
    def echo(z, level, step, cond):
        return z

    x = torch.randn(2, 4, 4, 8, 8)
    cond = torch.zeros(2, 4, 3)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    same, _ = shortcut.loss(echo, x, cond, 2, 0.0, 1.0, 0.999, g(), inputs=x)
    other, _ = shortcut.loss(echo, x, cond, 2, 0.0, 1.0, 0.999, g(), inputs=x + 1.0)
    plain, _ = shortcut.loss(echo, x, cond, 2, 0.0, 1.0, 0.999, g())
    assert same.item() == pytest.approx(plain.item()) and other.item() > same.item() + 0.1


def test_actions_change_the_features_and_small_turns_stay_distinct():
    m = tiny_model()
    cam = m.codec.slices["camera"]
    flat = torch.zeros(3, m.codec.dim)
    flat[1, cam.start + 1] = 0.15
    flat[2, cam.start + 1] = 0.30
    feats = m.codec.features(flat)
    assert feats.shape == (3, m.codec.dim + 1) and len({tuple(f.tolist()) for f in feats}) == 3
    assert torch.equal(m.codec.features(flat, torch.zeros(3))[:, :-1], torch.zeros(3, m.codec.dim))  # unknown: no action
    h, w = m.cfg.latent_hw
    z = torch.randn(1, 1, m.dit.c_in, h, w).repeat(3, 1, 1, 1, 1)
    with torch.no_grad():
        out = m.dit(z, torch.zeros(3, 1), torch.zeros(3, 1, dtype=torch.long), feats[:, None])
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_motion_prior_is_the_frame_before_moved_by_the_camera():
    """The pixel-space shift prior: the last frame moved by the camera action's exact pixel shift and encoded; the strip
    a turn reveals is the mean latent (0) by default, the edge repeated with prior_fill "edge"."""
    m = tiny_model(camera_px_per_deg=(1.0, -2.0), prior_geometry="shift")
    cam = m.codec.slices["camera"]
    frame = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8))
    a = torch.zeros(1, m.codec.dim)
    a[0, cam.start + 1] = 4.0  # yaw right 4 deg: the picture moves 8 px (4 latent cells of 2 px) left
    moved = m.prior.moved(frame, a)
    shifted = torch.cat([frame[:, :, 8:], frame[:, :, -1:].expand(-1, -1, 8, -1)], dim=2)
    torch.testing.assert_close(moved, m.encode(shifted), atol=1e-4, rtol=0)
    prior = m.prior(frame, a)
    assert torch.equal(prior[..., -4:], torch.zeros_like(prior[..., -4:]))
    torch.testing.assert_close(prior[..., :-5], moved[..., :-5])
    edge = tiny_model(camera_px_per_deg=(1.0, -2.0), prior_fill="edge", prior_geometry="shift")
    torch.testing.assert_close(edge.prior(frame, a), edge.prior.moved(frame, a))
    with pytest.raises(ValueError, match="prior_fill"):
        tiny_model(prior_fill="wrap")
    with pytest.raises(ValueError, match="power of two"):
        tiny_model(sampler=type(m.cfg.sampler)(steps=3))


def test_a_dreams_prior_moves_its_own_latent_without_the_autoencoders_round_trip():
    """`MotionPrior.follow`: standing still, a dream's next prior is its newest latent itself (decoding and
    re-encoding it would not be: that round trip compounded into a brightening picture); on a recorded frame,
    turning or not, it is the prior training reads (the frame moved and encoded)."""
    m = tiny_model(camera_px_per_deg=(1.0, -2.0))
    cam = m.codec.slices["camera"]
    z = torch.randn(2, m.cfg.ae.latent_channels, *m.cfg.latent_hw, generator=torch.Generator().manual_seed(0))
    noop = torch.zeros(2, m.codec.dim)
    with torch.no_grad():
        frame = m.decode(z)
        torch.testing.assert_close(m.prior.follow(z, frame, noop), z, atol=1e-5, rtol=0)
        assert (m.prior(frame, noop) - z).abs().mean() > 0.05  # the round trip it no longer takes
        turn = noop.clone()
        turn[:, cam.start:cam.stop] = torch.tensor([[-3.0, 4.0], [0.0, 0.0]])  # one row turns
        recorded = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
        for a in (noop, turn):
            torch.testing.assert_close(m.prior.follow(m.encode(recorded), recorded, a), m.prior(recorded, a),
                                       atol=1e-4, rtol=0)


def test_a_dream_at_its_pitch_clamp_moves_its_prior_as_far_as_the_view_turns():
    """The game stops the pitch at +-pitch_limit: a dream looking down at 85 degrees and asked for 10 more moves
    its prior (and reports its pitch) by the 5 degrees the view turns, where the pitch is unknown by the action."""
    m = tiny_model(camera_px_per_deg=(1.0, -2.0))
    cam = m.codec.slices["camera"]
    frames = np.random.default_rng(0).integers(0, 256, (2, m.start_frames, 32, 32, 3), dtype=np.uint8)
    a = torch.zeros(2, m.codec.dim)
    a[:, cam.start] = 10.0
    want = {}
    for row, pitch in ((0, 85.0), (1, float("nan"))):
        d = Sampler(m, frames[row:row + 1], steps=1, seeds=[0], pitch=np.array([pitch]))
        turned = a[row:row + 1].clone()
        turned[:, cam.start] = 5.0 if row == 0 else 10.0
        want[row] = m.prior.follow(d.pending, d.last_frame, turned)
        d.step(a[row:row + 1])
        torch.testing.assert_close(d.pending_prior, want[row], atol=1e-5, rtol=0)
        if row == 0:
            assert float(d.pitch[0]) == pytest.approx(m.cfg.pitch_limit)
    assert (want[0] - want[1]).abs().mean() > 0.01


def test_the_rotation_prior_turns_the_picture_as_the_game_does(indev):
    """`ModelConfig.prior_geometry` "rotation": the game's own frame before a turn, rotated by the turn from its
    pitch, is closer to the game's frame after it than the frame shifted at the lens's centre rate (and than the
    frame unmoved), for turns of yaw, pitch and both, from level and from a tilted view; an unturned frame is
    itself."""
    import math

    from tests.conftest import act, noop
    from worldsim.model.motion_prior import _moved_pixels, rotated_pixels

    env = indev(size=64)
    obs, info = env.reset(seed=3)
    for _ in range(3):
        obs, *_, info = env.step(noop(env.action_space))
    centre = 32 / math.tan(math.radians(35)) * math.pi / 180  # px per degree at the centre of a 70 degree lens
    for cam in ([0.0, 10.0], [10.0, 0.0], [0.0, -20.0], [-15.0, 8.0], [0.0, 0.0]):
        nxt, *_, after = env.step(act(env.action_space, camera=cam))
        prev, turn = torch.from_numpy(obs)[None], torch.tensor([cam])
        rotated = rotated_pixels(prev, turn[:, 0], turn[:, 1], torch.tensor([info["pitch"]]), 70.0)
        shifted = _moved_pixels(prev, -turn[:, 0] * centre, -turn[:, 1] * centre)

        def err(x: torch.Tensor, real: np.ndarray = nxt) -> float:  # the picture without the HUD's hotbar, which does not turn
            return float(((x[0].float() - torch.from_numpy(real).float()) ** 2)[4:-14, 4:-4].mean())

        if cam == [0.0, 0.0]:
            assert torch.equal(rotated, prev)
        else:
            assert err(rotated) < 0.85 * min(err(shifted), err(prev)), (cam, err(rotated), err(shifted), err(prev))
        obs, info = nxt, after


def test_a_rotation_dream_turns_its_prior_from_the_pitch_it_tracks():
    """A dream of the rotation geometry makes each next prior by rotating its picture from the pitch it tracks
    (a view tilted down turns differently from a level one), and its start frames' priors from the pitches the
    start's actions imply."""
    m = tiny_model(camera_px_per_deg=(1.0, -2.0), prior_geometry="rotation")
    cam = m.codec.slices["camera"]
    frames = np.random.default_rng(0).integers(0, 256, (1, m.start_frames, 32, 32, 3), dtype=np.uint8)
    a = torch.zeros(1, m.codec.dim)
    a[:, cam.start:cam.stop] = torch.tensor([5.0, 10.0])
    priors = []
    for pitch in (40.0, 0.0):
        d = Sampler(m, frames, steps=1, seeds=[0], pitch=np.array([pitch]))
        want = m.prior.follow(d.pending, d.last_frame, a, torch.tensor([pitch]))
        d.step(a)
        torch.testing.assert_close(d.pending_prior, want, atol=1e-5, rtol=0)
        priors.append(want)
    assert (priors[0] - priors[1]).abs().mean() > 0.01
    starts = torch.zeros(1, 3, m.codec.dim)
    starts[0, 1:, cam.start] = torch.tensor([4.0, -10.0])  # the pitch turned into frames 1 and 2
    torch.testing.assert_close(d._start_pitches(torch.tensor([20.0]), starts), torch.tensor([[26.0, 30.0]]))
    with pytest.raises(ValueError, match="prior_geometry"):
        tiny_model(prior_geometry="fisheye")


@pytest.mark.parametrize("geometry", ["shift", "rotation"])
def test_a_dream_with_view_memory_turned_away_and_back_makes_its_prior_from_what_it_saw(geometry):
    """`SamplerConfig.view_memory`: turned 30 degrees right and back, or once around, a dream's prior is the start
    frame's own latent again (the remembered frame of that very view, nothing left to turn), where without the
    memory it is the last dreamed frame moved back; on the way out it is the usual prior; a key pressed on the way (a step
    forward) makes the dream forget, and standing still the memory changes nothing."""
    from tests.conftest import act

    m = tiny_model(camera_px_per_deg=(1.0, -2.0), prior_geometry=geometry)
    frames = np.random.default_rng(0).integers(0, 256, (1, m.start_frames, 32, 32, 3), dtype=np.uint8)
    flat = {k: torch.from_numpy(m.codec.encode(act(m.codec.space, **kw)))[None]
            for k, kw in (("right", {"camera": [0, 10]}), ("left", {"camera": [0, -10]}), ("still", {}),
                          ("forward", {"forward": 1}))}
    priors = {}
    for memory, plan in ((False, "rrrlll"), (True, "rrrlll"), (True, "rrrflll"), (True, "ssss")):
        m.cfg.sampler.view_memory = 16 if memory else 0
        d = Sampler(m, frames, steps=1, seeds=[0], pitch=np.array([0.0]))
        start = d.pending.clone()
        seen = []
        for c in plan:
            d.step({"r": flat["right"], "l": flat["left"], "f": flat["forward"], "s": flat["still"]}[c])
            seen.append(d.pending_prior.clone())
        priors[(memory, plan)] = seen
        if memory and plan == "rrrlll":
            torch.testing.assert_close(seen[-1], start, atol=1e-5, rtol=0)
    m.cfg.sampler.view_memory = 64
    d = Sampler(m, frames, steps=1, seeds=[0], pitch=np.array([0.0]))
    for _ in range(36):  # once around: the start's view again
        d.step(flat["right"])
    torch.testing.assert_close(d.pending_prior, start, atol=1e-5, rtol=0)
    for i in range(3):  # turning out: the newest frame is the closest view, as without the memory
        torch.testing.assert_close(priors[(True, "rrrlll")][i], priors[(False, "rrrlll")][i], atol=1e-5, rtol=0)
    assert (priors[(False, "rrrlll")][-1] - priors[(True, "rrrlll")][-1]).abs().mean() > 0.01
    m.cfg.sampler.view_memory = 0
    d = Sampler(m, frames, steps=1, seeds=[0], pitch=np.array([0.0]))
    for c in "rrrflll":
        d.step({"r": flat["right"], "l": flat["left"], "f": flat["forward"]}[c])
    torch.testing.assert_close(priors[(True, "rrrflll")][-1], d.pending_prior, atol=1e-5, rtol=0)
    d = Sampler(m, frames, steps=1, seeds=[0], pitch=np.array([0.0]))
    for p in priors[(True, "ssss")]:
        d.step(flat["still"])
        torch.testing.assert_close(p, d.pending_prior, atol=1e-5, rtol=0)


def test_configs_document_every_field_round_trip_and_read_retired_fields():
    """Every config field has its docstring (the CLI's help); configs survive JSON; a config written before the
    first model generation was retired loads when the retired fields hold the values this design has, and a
    first-generation config is one clear error."""
    from worldsim.model.config import AutoencoderConfig, SamplerConfig

    for cls in (ModelConfig, AutoencoderConfig, DiTConfig, SamplerConfig, TrainConfig):
        names = [f.name for f in __import__("dataclasses").fields(cls)]
        assert set(field_docs(cls)) == set(names), cls.__name__
    for name in PRESETS:
        cfg = preset(name).model
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert preset("small").model == ModelConfig() and preset("small").train == TrainConfig()  # defaults ship
    with pytest.raises(ValueError, match="unknown config keys"):
        ModelConfig.from_dict({"frame_size": 64, "bogus": 1})
    old = {**ModelConfig().to_dict(), "generation": 2, "view_pitch": False}
    old["sampler"] = {**old["sampler"], "shift": 1.0, "reencode": False, "key_guidance": 0.0, "pixel_prior": True,
                      "prior_start": 0.0}
    assert ModelConfig.from_dict(old) == ModelConfig()
    with pytest.raises(ValueError, match="first-generation"):
        ModelConfig.from_dict({**old, "generation": 1})
    with pytest.raises(ValueError, match="key_guidance"):
        ModelConfig.from_dict({**old, "sampler": {**old["sampler"], "key_guidance": 2.0}})
    assert TrainConfig.from_dict({"ctx_aug_prob": 0.5, "pitch_drop": 0.1, "dit_steps": 5}).dit_steps == 5


def test_auto_precision_is_the_faster_one_measured_here():
    """"auto" runs a frame in both precisions and keeps the faster (not what the CPU's flags promise)."""
    m = tiny_model()
    choice = fastest_precision(m)
    assert choice in ("fp32", "bf16")
    assert m.set_precision("auto").precision == choice
    with pytest.raises(ValueError, match="precision"):
        m.set_precision("fp16")


def test_bf16_inference_stores_its_matmul_weights_once_and_dreams_what_autocast_dreams(tiny_ckpt):
    """A model loaded for bf16 inference keeps bf16 copies of the weights autocast would cast on every call (the
    same rounding): its dreams are autocast's, and it refuses to be switched back to fp32 numerics."""
    cast = worldsim.load(tiny_ckpt, "cpu", "bf16")
    plain = worldsim.load(tiny_ckpt, "cpu", "fp32").set_precision("bf16")
    assert cast.inference_only and not plain.inference_only
    assert cast.dit.blocks[0].qkv.weight.dtype == torch.bfloat16 and cast.ae.decoder.net[0].weight.dtype == torch.bfloat16
    assert cast.dit.pos_space.dtype == torch.float32 and all(p.dtype == torch.float32 for p in cast.heads.parameters())
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, *cast.cfg.frame_hw, 3), dtype=np.uint8)
    acts = np.zeros((6, 2, cast.codec.dim), np.float32)
    acts[::2, :, cast.codec.slices["camera"].start] = 7.0  # turning steps encode their moved frames too
    dreams = []
    for m in (cast, plain):
        s = Sampler(m, frames, seeds=[3, 4])
        dreams.append(np.stack([s.step(a).frames for a in acts]).astype(int))
    diff = np.abs(dreams[0] - dreams[1])
    assert diff.max() <= 2 and diff.mean() < 0.01  # identical here; bf16 kernels may round differently elsewhere
    with pytest.raises(ValueError, match="load the checkpoint again"):
        cast.set_precision("fp32")
