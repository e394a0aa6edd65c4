"""The world model on the tiny preset: causal cache equivalence, training, checkpoints, resume, DDP."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import worldsim
from worldsim.envs.actions import minerl_action_space
from worldsim.envs.indev.env import INDEV_KEYS
from worldsim.model.actions import space_to_json
from worldsim.model.checkpoint import CheckpointError, save_checkpoint
from worldsim.model.config import PRESETS, ModelConfig, preset
from worldsim.sampling.sampler import Dreamer
from worldsim.model.world_model import WorldModel, load_extending


def _tiny_model(seed=0) -> WorldModel:
    torch.manual_seed(seed)
    cfg = preset("tiny").model
    cfg.action_space_json = space_to_json(minerl_action_space(INDEV_KEYS))
    m = WorldModel(cfg).eval()
    for p in m.dit.parameters():  # break the zero-init so outputs depend on everything
        p.data.add_(torch.randn_like(p) * 0.05)
    return m


def test_context_cache_gives_exactly_the_full_forward_and_time_is_causal():
    m = _tiny_model()
    k1 = m.context + 1
    c = m.dit.patch_in.in_features // m.cfg.dit.patch**2  # the latent, and the motion prior's channels
    h, w = m.cfg.latent_hw
    z = torch.randn(2, k1, c, h, w)
    s = torch.rand(2, k1)
    a = m.frame_features(torch.randn(2, k1, m.codec.dim))
    with torch.no_grad():
        full = m.dit(z, s, a)
        cache = m.dit.context_cache(z[:, :-1], s[:, :-1], a[:, :-1])
        last = m.dit.forward_new(z[:, -1], s[:, -1], a[:, -1], cache)
        torch.testing.assert_close(last, full[:, -1], atol=1e-5, rtol=1e-5)
        z2 = z.clone()
        z2[:, -1] += 1.0  # the future must not leak into the past
        full2 = m.dit(z2, s, a)
    torch.testing.assert_close(full2[:, :-1], full[:, :-1])
    assert not torch.allclose(full2[:, -1], full[:, -1])
    with torch.no_grad():  # the rollout's fused first step: the same velocity and the same context cache
        v, kv = m.dit.first_step(z[:, :-1], s[:, :-1], a[:, :-1], z[:, -1], s[:, -1], a[:, -1])
    torch.testing.assert_close(v, full[:, -1], atol=1e-5, rtol=1e-5)
    for (k1_, v1_), (k2_, v2_) in zip(kv, cache):
        torch.testing.assert_close(k1_, k2_, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v1_, v2_, atol=1e-5, rtol=1e-5)


def test_actions_change_the_prediction_and_small_turns_stay_distinct():
    m = _tiny_model()
    cam = m.codec.slices["camera"]
    flat = torch.zeros(3, m.codec.dim)
    flat[1, cam.start + 1] = 0.15
    flat[2, cam.start + 1] = 0.30
    feats = m.action_features(flat)
    assert len({tuple(f.tolist()) for f in feats}) == 3
    k, c = m.context, m.cfg.ae.latent_channels
    ctx = torch.randn(1, k, c, *m.cfg.latent_hw).repeat(3, 1, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    out = m.predict_next(ctx, torch.zeros(3, k, m.codec.dim), torch.ones(3, k), flat, generator=g)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_motion_prior_is_the_frame_before_moved_by_the_camera():
    torch.manual_seed(0)
    cfg = preset("tiny").model
    cfg.action_space_json = space_to_json(minerl_action_space(INDEV_KEYS))
    cfg.camera_px_per_deg = (1.0, -2.0)  # frames are downsampled 2x: 1 deg pitch -> 0.5 latent px down, yaw -> 1 left
    m = WorldModel(cfg).eval()
    cam = m.codec.slices["camera"]
    z = torch.randn(1, 3, m.cfg.ae.latent_channels, *m.cfg.latent_hw)
    flat = torch.zeros(1, 3, m.codec.dim)
    flat[0, 1, cam.start + 1] = 3.0  # yaw right 3 deg: the picture moves 3 latent px left
    flat[0, 2, cam.start] = 4.0  # pitch down 4 deg: 2 latent px down
    prior = m.motion_prior(z, flat)
    assert torch.equal(prior[:, 0], torch.zeros_like(prior[:, 0]))
    torch.testing.assert_close(prior[0, 1, :, :, :-3], z[0, 0, :, :, 3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(prior[0, 2, :, 2:, :], z[0, 1, :, :-2, :], atol=1e-5, rtol=0)
    # the strip a move reveals: unknown (the mean latent, 0) by default; the edge repeated with prior_fill "edge"
    assert cfg.prior_fill == "mean" and torch.equal(prior[0, 1, :, :, -3:], torch.zeros_like(prior[0, 1, :, :, -3:]))
    edge_cfg = ModelConfig.from_dict({**cfg.to_dict(), "prior_fill": "edge"})
    edge = WorldModel(edge_cfg).eval().motion_prior(z, flat)
    torch.testing.assert_close(edge[0, 1, :, :, -3:], z[0, 0, :, :, -1:].expand(-1, -1, 3), atol=1e-5, rtol=0)
    cfg.prior_fill = "wrap"
    with pytest.raises(ValueError, match="prior_fill"):
        WorldModel(cfg)


def test_view_fill_puts_what_the_pitch_shows_into_the_revealed_strip(tmp_path):
    """prior_fill = "view": the strip a move reveals takes the view atlas's rows at the new frame's pitch (the mean
    where the pitch is unknown); the atlas is the per-row mean latent of the training frames per 5-degree pitch
    bin, nearest bin where the data never looked, and it is saved with the weights."""
    from worldsim import view_atlas

    h = 4
    pitch = np.array([0.0, 0.0, 5.0, 6.0, np.nan], np.float32)
    lat = np.zeros((5, 2, h, 3), np.float32)
    lat[:2, :, 0] = 1.0  # at level view the top row is "sky" (1)
    lat[2:4, :, 3] = -1.0  # at 5 degrees down the bottom row is "ground" (-1)
    lat[4] = 9.0  # unknown pitch: left out
    atlas = view_atlas.build(lat, pitch)
    assert atlas.shape == (view_atlas.BINS, 2, h)
    level, down = view_atlas.BINS // 2, view_atlas.BINS // 2 + 1
    assert torch.equal(atlas[level, :, 0], torch.ones(2)) and torch.equal(atlas[down, :, 3], -torch.ones(2))
    assert torch.equal(atlas[0], atlas[level]) and torch.equal(atlas[-1], atlas[down])  # nearest bin the data saw
    torch.testing.assert_close(view_atlas.rows(atlas, torch.tensor([2.5]))[0], (atlas[level] + atlas[down]) / 2)
    assert torch.equal(view_atlas.rows(atlas, torch.tensor([float("nan")])), torch.zeros(1, 2, h))
    with pytest.raises(ValueError, match="pitch"):
        view_atlas.build(lat, np.full(5, np.nan, np.float32))

    m = _tiny_model()
    m.cfg.camera_px_per_deg = (1.0, -2.0)
    c, (lh, lw) = m.cfg.ae.latent_channels, m.cfg.latent_hw
    full = torch.randn(view_atlas.BINS, c, lh)
    with pytest.raises(ValueError, match="atlas"):
        m.set_prior_fill("view")
    m.set_prior_fill("view", full)
    cam = m.codec.slices["camera"].start
    z = torch.randn(2, 2, c, lh, lw)
    flat = torch.zeros(2, 2, m.codec.dim)
    flat[:, 1, cam] = 4.0  # at this test's 1 px per degree the picture moves 2 latent px down: 2 new rows on top
    prior = m.motion_prior(z, flat, torch.tensor([[6.0, 10.0], [float("nan")] * 2]))
    torch.testing.assert_close(prior[0, 1, :, 2:], z[0, 0, :, :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(prior[0, 1, :, :2], view_atlas.rows(full, torch.tensor([10.0]))[0, :, :2, None].expand(-1, -1, lw),
                               atol=1e-5, rtol=0)
    assert torch.equal(prior[1, 1, :, :2], torch.zeros(c, 2, lw))  # unknown pitch: the mean
    save_checkpoint(tmp_path / "view", m)
    back = worldsim.load(tmp_path / "view")
    assert back.cfg.prior_fill == "view" and torch.equal(back.view_atlas, full)
    assert "view_atlas" not in back.set_prior_fill("mean").state_dict()


@pytest.mark.parametrize("fill", ["mean", "view"])
def test_rollout_feeds_the_network_what_training_does(fill):
    """predict_next (cached context, fused first step) = one Euler step of the plain forward on the same input the
    training loss builds: noisy frames with their motion prior."""
    from worldsim import diffusion, view_atlas

    m = _tiny_model()
    m.cfg.camera_px_per_deg = (0.8, -0.7)
    k, c, (h, w) = m.context, m.cfg.ae.latent_channels, m.cfg.latent_hw
    g = torch.Generator().manual_seed(3)
    if fill == "view":
        m.set_prior_fill("view", torch.randn(view_atlas.BINS, c, h, generator=g))
    ctx, acts = torch.randn(2, k, c, h, w, generator=g), torch.randn(2, k + 1, m.codec.dim, generator=g) * 3
    pitch = torch.tensor([[10.0, 20.0], [float("nan")] * k])  # one dream knows its view's pitch, one does not
    eps, start = m.draw_noise(2, g)
    with torch.no_grad():
        got = m.predict_next(ctx, acts[:, :k], torch.ones(2, k), acts[:, k], steps=1, noise=(eps, start), context_pitch=pitch)
        s = torch.cat([torch.full((2, k), m.cfg.sampler.context_noise), torch.ones(2, 1)], dim=1)
        zs = torch.cat([diffusion.add_noise(ctx, s[:, :k], eps), start[:, None]], dim=1)
        cam = m.codec.slices["camera"].start
        pitch_all = torch.cat([pitch, (pitch[:, -1] + acts[:, k, cam]).clamp(-90, 90)[:, None]], dim=1)
        v = m.dit(torch.cat([zs, m.motion_prior(zs, acts, pitch_all)], dim=2), s, m.frame_features(acts, None, pitch_all))[:, -1]
    torch.testing.assert_close(got, start - v, atol=1e-4, rtol=1e-4)


def test_key_guidance_moves_the_first_step_away_from_the_keys_released():
    """v + g (v - v_released) on the first step, for the dreams that press a key (camera kept in the reference);
    a dream that presses none samples exactly as without guidance, whatever its batch neighbours do."""
    m = _tiny_model()
    k, c, (h, w) = m.context, m.cfg.ae.latent_channels, m.cfg.latent_hw
    cam, sl = m.codec.slices["camera"].start, m.codec.slices
    g = torch.Generator().manual_seed(5)
    ctx, ctx_acts = torch.randn(3, k, c, h, w, generator=g), torch.randn(3, k, m.codec.dim, generator=g)
    act = torch.zeros(3, m.codec.dim)
    act[:, cam:cam + 2] = torch.tensor([[2.0, -5.0], [0.0, 3.0], [-1.0, 0.0]])  # every dream turns
    act[1, sl["attack"]] = 1.0
    act[2, sl["forward"]] = 1.0
    released = act.clone()
    released[1:, sl["attack"]] = 0.0
    released[2, sl["forward"]] = 0.0
    noise = m.draw_noise(3, g)

    def run(a, guide, steps=1):
        return m.predict_next(ctx, ctx_acts, torch.ones(3, k), a, steps=steps, noise=noise, key_guidance=guide)

    plain, rel, guided = run(act, 0.0), run(released, 0.0), run(act, 1.5)
    torch.testing.assert_close(guided, plain + 1.5 * (plain - rel), atol=1e-4, rtol=1e-4)  # one step: z = start - v
    torch.testing.assert_close(guided[0], plain[0], atol=0, rtol=0)  # presses no key: not guided
    two = run(act, 1.5, steps=2)
    torch.testing.assert_close(two[0], run(act, 0.0, steps=2)[0], atol=0, rtol=0)
    assert not torch.allclose(two[1:], run(act, 0.0, steps=2)[1:])
    m.set_key_guidance(1.5)  # the config's value is the default
    torch.testing.assert_close(run(act, None), guided, atol=0, rtol=0)
    for bad in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="key_guidance"):
            m.set_key_guidance(bad)


def test_prior_sampling_pixel_prior_and_warm_start():
    """The pixel-space prior is made from the last frame's pixels, which a dream passes on; the warm start begins a
    turning frame at level s0 from its prior, and leaves a frame whose camera stays still exactly as it was."""
    m = _tiny_model()
    m.cfg.camera_px_per_deg = (-0.7, -0.7)
    k, (hh, ww) = m.context, m.cfg.frame_hw
    cam = m.codec.slices["camera"].start
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (3, k, hh, ww, 3), generator=g, dtype=torch.uint8)
    ctx, ctx_acts = m.encode(frames), torch.zeros(3, k, m.codec.dim)
    act = torch.zeros(3, m.codec.dim)
    act[:, cam:cam + 2] = torch.tensor([[0.0, 6.0], [0.0, 0.0], [-4.0, 0.0]])  # dream 1 keeps its camera still
    noise = m.draw_noise(3, g)

    def run(**kw):
        return m.predict_next(ctx, ctx_acts, torch.ones(3, k), act, steps=2, noise=noise, **kw)

    latent = run()
    m.set_prior_sampling(pixel_prior=True)
    from_pixels = run(last_frame=frames[:, -1])
    assert not torch.allclose(from_pixels[[0, 2]], latent[[0, 2]])
    d = Dreamer(m, frames.numpy(), seed=0)
    d_noise = m.draw_noise(3, torch.Generator().manual_seed(0))
    want = m.decode(m.predict_next(ctx, ctx_acts, torch.zeros(3, k), act, noise=d_noise, last_frame=frames[:, -1]))
    assert np.array_equal(d.step(act.numpy()), want.numpy())  # the dream moves the real last frame's pixels
    m.set_prior_sampling(prior_start=0.8)
    warm = run(last_frame=frames[:, -1])
    assert torch.equal(warm[1], from_pixels[1]) and not torch.allclose(warm[[0, 2]], from_pixels[[0, 2]])
    for bad in ({"prior_start": 1.0}, {"prior_start": -0.1}, {"prior_start": True}, {"pixel_prior": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            m.set_prior_sampling(**bad)


def test_training_and_rollout_feed_the_same_pixel_prior(monkeypatch):
    """A model sampling with the pixel prior trains on it: with a clean context, the loss and predict_next both put
    exactly `pixel_prior` of the last context frame next to the new frame; the latent prior there differs."""
    m = _tiny_model()
    m.cfg.camera_px_per_deg = (-0.7, -0.7)
    m.cfg.sampler.context_noise = 0.0
    m.set_prior_sampling(pixel_prior=True)
    k, c, (hh, ww) = m.context, m.cfg.ae.latent_channels, m.cfg.frame_hw
    cam = m.codec.slices["camera"].start
    g = torch.Generator().manual_seed(4)
    frames = torch.randint(0, 256, (2, k + 1, hh, ww, 3), generator=g, dtype=torch.uint8)
    acts = torch.zeros(2, k + 1, m.codec.dim)
    acts[:, k, cam:cam + 2] = torch.tensor([[0.0, 6.0], [-4.0, 2.0]])
    want = m.pixel_prior(frames[:, k - 1], acts[:, k])
    seen = {}

    def spy(x, s, a):
        seen["train"] = x[:, -1, c:].clone()
        return m.dit(x, s, a)

    z0, known = m.encode(frames), torch.ones(2, k + 1)
    moved = m.moved_latents(frames[:, k - 1], acts[:, k])
    m.dynamics_loss(z0, acts, known, 1.0, 0.0, torch.Generator().manual_seed(0), net=spy, moved=moved)
    torch.testing.assert_close(seen["train"], want, atol=1e-5, rtol=0)
    m.dynamics_loss(z0, acts, known, 1.0, 0.0, torch.Generator().manual_seed(0), net=spy)
    assert (seen["train"] - want).abs().max() > 0.1  # the latent prior cross-fades where the pixels move
    first_step = m.dit.first_step

    def spy_first(ctx, s_ctx, a_ctx, z, s, a):
        seen["rollout"] = z[:, c:].clone()
        return first_step(ctx, s_ctx, a_ctx, z, s, a)

    monkeypatch.setattr(m.dit, "first_step", spy_first)
    m.predict_next(z0[:, :k], acts[:, :k], known[:, :k], acts[:, k], steps=1, last_frame=frames[:, k - 1])
    torch.testing.assert_close(seen["rollout"], want, atol=1e-5, rtol=0)


def test_view_pitch_features_and_a_dream_carries_the_pitch_through_the_camera():
    """Each frame's pitch conditions it (sines/cosines + known flag; unknown: all zero); a dream sums the camera's
    pitch changes and clamps at +-90 degrees as the game does; an unknown pitch stays unknown."""
    from worldsim.model.conditioning import pitch_features
    from worldsim.sampling.sampler import Dreamer

    f = pitch_features(torch.tensor([float("nan"), 0.0, 30.0, 120.0]))
    assert f.shape == (4, 9) and torch.all(f[0] == 0) and torch.all(f[1:, -1] == 1)
    torch.testing.assert_close(f[3], pitch_features(torch.tensor([90.0]))[0])  # clamped as the game clamps
    assert not torch.allclose(f[1], f[2])
    m = _tiny_model()
    k, c, (h, w) = m.context, m.cfg.ae.latent_channels, m.cfg.latent_hw
    g = torch.Generator().manual_seed(0)
    ctx, acts = torch.randn(1, k, c, h, w, generator=g), torch.randn(1, k + 1, m.codec.dim, generator=g)
    noise = m.draw_noise(1, g)
    with torch.no_grad():
        out = [m.predict_next(ctx, acts[:, :k], torch.ones(1, k), acts[:, k], noise=noise, context_pitch=p)
               for p in (None, torch.full((1, k), float("nan")), torch.tensor([[0.0, 0.0]]), torch.tensor([[60.0, 60.0]]))]
    torch.testing.assert_close(out[0], out[1])  # None = unknown
    assert not torch.allclose(out[1], out[2]) and not torch.allclose(out[2], out[3])
    frames = np.random.default_rng(0).integers(0, 255, (2, k, *m.cfg.frame_hw, 3), dtype=np.uint8)
    d = Dreamer(m, frames, pitch=np.array([[10.0, 80.0], [np.nan, np.nan]]), seed=0)
    cam = m.codec.slices["camera"].start
    for dp, want in ((30.0, 90.0), (-100.0, -10.0), (-200.0, -90.0)):
        a = np.zeros((2, m.codec.dim), np.float32)
        a[:, cam] = dp
        d.step(a)
        assert d.pitch[0, -1].item() == want and torch.isnan(d.pitch[1]).all()
    with pytest.raises(ValueError, match="pitch"):
        Dreamer(m, frames, pitch=np.zeros((2, k + 1)))


def test_training_can_hide_the_pitch():
    """`pitch_drop` hides the pitch of a share of the windows, so a dream started without one still works."""
    m = _tiny_model()
    z = torch.randn(4, m.context + 1, m.cfg.ae.latent_channels, *m.cfg.latent_hw)
    a = torch.randn(4, m.context + 1, m.codec.dim)
    known = torch.ones(4, m.context + 1)
    pitch = torch.full((4, m.context + 1), 30.0)

    def loss(p, drop):
        return m.dynamics_loss(z, a, known, 0.5, 0.1, torch.Generator().manual_seed(1), pitch=p, pitch_drop=drop).item()

    unknown = torch.full_like(pitch, float("nan"))
    assert loss(pitch, 0.0) != loss(unknown, 0.0)
    assert loss(pitch, 1.0) == pytest.approx(loss(unknown, 1.0))


def test_training_noise_levels_cover_where_the_few_step_sampler_evaluates():
    """Logit-normal levels almost never reach s = 1, where every sampled frame starts: a share of rollout-regime
    targets is put exactly on the 1-3 step samplers' levels; context levels and the Diffusion Forcing windows
    are left as they were."""
    from worldsim import diffusion

    levels = diffusion.sampler_levels(1.0)
    assert sorted(set(levels)) == pytest.approx([1 / 3, 0.5, 2 / 3, 1.0]) and levels.count(1.0) == 3
    g = torch.Generator().manual_seed(0)
    s, mask = diffusion.noise_levels(20000, 5, 0.5, 0.15, g, None, levels, 0.5)
    rollout = mask[:, 0] == 0
    on_grid = torch.isclose(s[:, -1:], torch.tensor(levels)[None]).any(dim=1)
    assert 0.45 < rollout.float().mean() < 0.55
    assert 0.45 < on_grid[rollout].float().mean() < 0.55  # half the rollout windows
    assert on_grid[~rollout].float().mean() < 0.01  # DF windows: continuous levels
    assert (s[rollout][:, -1] == 1.0).float().mean() > 0.1  # s = 1, once a rare tail, is now trained often
    assert s[rollout][:, :-1].max() <= 0.15
    plain, _ = diffusion.noise_levels(20000, 5, 0.5, 0.15, torch.Generator().manual_seed(0))
    assert (plain[:, -1] > 0.95).float().mean() < 0.01


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from worldsim.data_collect.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("data") / "ds32"
    collect(CollectConfig(episodes=3, steps=40, size=32, out=str(out), seed=5), progress=False)
    return out


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_tiny_trains_loss_drops_and_checkpoint_round_trips(tiny_data, tmp_path):
    from worldsim.training.trainer import train

    run = tmp_path / "run"
    result = train(str(tiny_data), str(run), "tiny", progress=False, ae_steps=60, dit_steps=60, sample_every=60)
    assert result["phase"] == "done"
    log = _log(run)
    ae = [r["ae_loss"] for r in log if r["phase"] == "ae"]
    dit = [r["dit_loss"] for r in log if r["phase"] == "dit"]
    assert ae[-1] < 0.7 * ae[0] and dit[-1] < dit[0]
    assert any(r["phase"] == "heads" for r in log)
    assert list((run / "samples").glob("*.mp4"))
    from worldsim.training.latents import LatentCache
    from worldsim.data.dataset import Dataset

    ds = Dataset(tiny_data)  # the cache carries each frame's view pitch from the recorded poses
    assert np.array_equal(LatentCache(run / "latents").pitch, np.concatenate([ds.episode(e).infos["pose"][:, 3] for e in range(len(ds))]).astype(np.float32))
    model = worldsim.load(run)
    assert model.checkpoint_meta["dataset"]["episodes"] == 3
    assert bool(model.heads_trained)
    again = worldsim.load(run)
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (1, 2, 32, 32, 3), dtype=np.uint8))
    ctx = model.encode(frames)
    a = torch.zeros(1, model.codec.dim)
    outs = [m.predict_next(ctx, torch.zeros(1, 2, m.codec.dim), torch.ones(1, 2), a,
                           generator=torch.Generator().manual_seed(1)) for m in (model, again)]
    assert torch.equal(outs[0], outs[1])
    # the checkpoint alone rebuilds the model: same weights after a save elsewhere
    save_checkpoint(tmp_path / "copy", model)
    third = worldsim.load(tmp_path / "copy")
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), third.state_dict().values()))


@pytest.mark.parametrize("name", ["tiny", "tiny2"])
def test_resume_continues_the_same_loss_curve(tiny_data, tmp_path, name):
    from worldsim.training.trainer import train

    opts = dict(ae_steps=20, dit_steps=30, decoder_steps=10, checkpoint_every=10, log_every=5, sample_every=10**6,
                progress=False)
    train(str(tiny_data), str(tmp_path / "straight"), name, **opts)
    r = train(str(tiny_data), str(tmp_path / "split"), name, stop_after=12, **opts)  # stops inside the AE phase
    assert r["stopped_early"] and r["phase"] == "ae"
    r = train(str(tiny_data), str(tmp_path / "split"), name, resume=True, stop_after=17, **opts)  # inside dynamics
    assert r["stopped_early"] and r["phase"] == "dit"
    with open(tmp_path / "split" / "log.jsonl", "a") as f:  # a line written after the last checkpoint, then killed
        f.write(json.dumps({"phase": "dit", "step": 99, "dit_loss": 0.0}) + "\n")
    train(str(tiny_data), str(tmp_path / "split"), name, resume=True, **opts)
    key = lambda r: (r["phase"], r["step"], [r.get(f"{p}_loss") for p in ("ae", "dit", "heads", "decoder")])  # noqa: E731
    straight = [key(r) for r in _log(tmp_path / "straight")]
    split = [key(r) for r in _log(tmp_path / "split")]
    assert [k for k in straight if k[0] == "heads"] and [k for k in straight if k[0] == "decoder"]
    assert split == straight


def test_resume_keeps_the_settings_the_run_was_started_with(tiny_data, tmp_path):
    """A run started with 12 dynamics steps and killed stays a 12-step run when resumed with no step options (the
    tiny preset says 30); an option given on resume still wins."""
    from worldsim.model.checkpoint import load_train_state
    from worldsim.training.trainer import train

    run = tmp_path / "run"
    r = train(str(tiny_data), str(run), "tiny", ae_steps=5, dit_steps=12, heads_steps=5, decoder_steps=0,
              checkpoint_every=4, sample_every=10**6, progress=False, stop_after=9)
    assert r["stopped_early"] and r["phase"] == "dit"
    assert train(str(tiny_data), str(run), "tiny", resume=True, progress=False)["phase"] == "done"
    assert load_train_state(run)[1]["dit_done"] == 12
    assert max(rec["step"] for rec in _log(run) if rec["phase"] == "dit") <= 12
    train(str(tiny_data), str(run), "tiny", resume=True, progress=False, dit_steps=16)
    assert load_train_state(run)[1]["dit_done"] == 16


def test_decoder_fine_tuning_keeps_the_latents_and_sharpens_the_frames(tiny_data, tmp_path):
    """`--resume --decoder-steps N` on a finished run trains the decoder alone: encoder, dynamics model and heads
    (and so every latent the dynamics model was trained on) stay bit-identical, reconstructions improve."""
    import worldsim
    from worldsim.model.checkpoint import load_train_state
    from worldsim.training.trainer import train

    opts = dict(ae_steps=5, dit_steps=5, heads_steps=5, checkpoint_every=10, log_every=5, sample_every=10**6,
                progress=False)
    run = tmp_path / "run"
    assert train(str(tiny_data), str(run), "tiny", decoder_steps=0, **opts)["phase"] == "done"
    before = worldsim.load(run)
    assert train(str(tiny_data), str(run), "tiny", resume=True, decoder_steps=60, decoder_lr=3e-3, **opts)["phase"] == "done"
    after = worldsim.load(run)
    assert load_train_state(run)[1]["decoder_done"] == 60 and after.checkpoint_meta["decoder_steps"] == 60
    changed = {n.split(".")[0] + "." + n.split(".")[1] for (n, p), q in zip(before.state_dict().items(),
                                                                          after.state_dict().values()) if not torch.equal(p, q)}
    assert changed == {"ae.decoder"}
    log = [r for r in _log(run) if r["phase"] == "decoder"]
    assert log[-1]["decoder_psnr"] > log[0]["decoder_psnr"]
    assert [r["phase"] for r in _log(run)].count("dit") == 1  # the first sitting's log lines are kept


def test_a_finished_run_extends_with_more_dynamics_steps(tiny_data, tmp_path):
    """`--resume --steps N` on a finished run: the dynamics phase carries on with its own optimizer state, and the
    outcome heads (which read real latents, not the dynamics model) are kept, not retrained."""
    import worldsim
    from worldsim.model.checkpoint import load_train_state
    from worldsim.training.trainer import train

    opts = dict(ae_steps=5, checkpoint_every=5, log_every=5, sample_every=10**6, progress=False, heads_steps=5)
    run = tmp_path / "run"
    assert train(str(tiny_data), str(run), "tiny", dit_steps=10, **opts)["phase"] == "done"
    before = worldsim.load(run)
    r = train(str(tiny_data), str(run), "tiny", resume=True, dit_steps=15, **opts)
    assert r["phase"] == "done" and not r["stopped_early"]
    after = worldsim.load(run)
    _, info = load_train_state(run)
    assert info["dit_done"] == 15
    assert all(torch.equal(p, q) for (n, p), q in zip(before.state_dict().items(), after.state_dict().values())
               if n.startswith("heads."))
    assert not torch.equal(before.dit.blocks[0].qkv.weight, after.dit.blocks[0].qkv.weight)
    dit_steps = [r["step"] for r in _log(run) if r["phase"] == "dit"]
    assert dit_steps == sorted(dit_steps) and dit_steps[-1] == 15


def test_bad_checkpoints_fail_with_a_clear_error(tiny_data, tmp_path):
    from worldsim.training.trainer import train

    run = tmp_path / "run"
    train(str(tiny_data), str(run), "tiny", progress=False, ae_steps=5, dit_steps=5)
    ckpt = worldsim.model.checkpoint.resolve(run)
    with pytest.raises(CheckpointError, match="not found"):
        worldsim.load(tmp_path / "nothing")
    weights = ckpt / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        worldsim.load(ckpt)
    weights.write_bytes(blob)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model"]["dit"]["width"] = 96
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match"):
        worldsim.load(ckpt)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        worldsim.load(ckpt)


def test_config_round_trips_through_json():
    for name in PRESETS:
        cfg = preset(name).model
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown config keys"):
        ModelConfig.from_dict({"frame_size": 64, "bogus": 1})


@pytest.mark.parametrize("name", ["tiny", "tiny2"])
def test_ddp_two_processes_gloo_replicas_stay_in_sync(tiny_data, tmp_path, name):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a crash shows where it happened
    with socket.socket() as sock:  # a free port: a fixed one can still be held by an earlier run (TIME_WAIT)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "cli", "train", "--data", str(tiny_data), "--preset", name, "--out", str(run),
           "--ae-steps", "6", "--steps", "6", "--threads", "1", "--quiet", "--sample-every", "1000"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    sync = json.loads((run / "ddp_sync.json").read_text())
    assert sync["world_size"] == 2 and sync["in_sync"]
    assert sync["checksums"][0] == sync["checksums"][1]


def test_init_from_a_model_without_the_motion_prior_starts_as_that_model(tiny_data, tmp_path):
    """`--init`: the new run reuses the other run's autoencoder and latent cache, and its first prediction is the
    other model's (the prior's input weights start at zero); then it trains the dynamics model."""
    import worldsim
    from worldsim.training.trainer import Trainer

    old = preset("tiny")
    old.model.motion_prior = False
    old.model.view_pitch = False
    opts = dict(ae_steps=10, dit_steps=10, heads_steps=5, decoder_steps=0, checkpoint_every=5, sample_every=10**6)
    for k, v in opts.items():
        setattr(old.train, k, v)
    Trainer(str(tiny_data), str(tmp_path / "old"), old.model, old.train, progress=False).run()
    src = worldsim.load(tmp_path / "old")
    new = preset("tiny")
    for k, v in opts.items():
        setattr(new.train, k, v)
    t = Trainer(str(tiny_data), str(tmp_path / "new"), new.model, new.train, progress=False, init=str(tmp_path / "old"))
    assert t.phase == "dit" and t.model.cfg.motion_prior and any(t.model.cfg.camera_px_per_deg) and t.model.cfg.view_pitch
    k, c, (h, w) = src.context, src.cfg.ae.latent_channels, src.cfg.latent_hw
    g = torch.Generator().manual_seed(0)
    ctx, acts = torch.randn(1, k, c, h, w, generator=g), torch.randn(1, k + 1, src.codec.dim, generator=g)
    noise = src.draw_noise(1, g)
    pitch = torch.tensor([[25.0, 30.0]])
    grown = WorldModel(ModelConfig.from_dict({**src.cfg.to_dict(), "view_pitch": True}))  # grown: new weights zero
    load_extending(grown, src.state_dict())
    same = [m.eval().predict_next(ctx, acts[:, :k], torch.ones(1, k), acts[:, k], noise=noise, context_pitch=pitch)
            for m in (src, t.ema.model, grown)]
    torch.testing.assert_close(same[0], same[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(same[0], same[2], atol=1e-5, rtol=1e-5)
    assert grown.cfg.view_pitch and not src.cfg.view_pitch
    assert (tmp_path / "new" / "latents" / "latents.f16").stat().st_size == (tmp_path / "old" / "latents" / "latents.f16").stat().st_size
    assert t.run()["phase"] == "done"
    after = worldsim.load(tmp_path / "new")
    assert torch.equal(after.ae.encoder.net[0].weight, src.ae.encoder.net[0].weight) and bool(after.heads_trained)
    assert [r["phase"] for r in _log(tmp_path / "new")].count("dit") == 2  # steps 5 and 10
    other = preset("tiny")  # another context (or model generation): the autoencoder and heads only
    other.model.context = 3
    t3 = Trainer(str(tiny_data), str(tmp_path / "ctx3"), other.model, other.train, progress=False, init=str(tmp_path / "old"))
    assert torch.equal(t3.model.ae.encoder.net[0].weight, src.ae.encoder.net[0].weight) and bool(t3.model.heads_trained)
    assert not torch.equal(t3.model.dit.blocks[0].qkv.weight, src.dit.blocks[0].qkv.weight)
    bad = preset("tiny")  # another autoencoder: refused, naming the option
    bad.model.ae.latent_channels = 8
    with pytest.raises(ValueError, match="--init"):
        Trainer(str(tiny_data), str(tmp_path / "bad"), bad.model, bad.train, progress=False, init=str(tmp_path / "old"))


def test_a_model_sampling_with_the_pixel_prior_trains_on_it(tiny_data, tmp_path):
    """The trainer caches each frame's pixel-moved predecessor (moved.f16) when the model samples with the pixel
    prior, and the trainer trains on it."""
    from worldsim.model.config import preset
    from worldsim.training.latents import LatentCache
    from worldsim.data.dataset import Dataset
    from worldsim.training.trainer import Trainer, bf16_supported

    p = preset("tiny")
    p.model.sampler.pixel_prior = True
    p.train.ae_steps, p.train.dit_steps, p.train.heads_steps, p.train.decoder_steps = 5, 6, 2, 0
    run = tmp_path / "run"
    assert Trainer(str(tiny_data), str(run), p.model, p.train, progress=False).run()["phase"] == "done"
    cache, model, ds = LatentCache(run / "latents"), worldsim.load(run), Dataset(tiny_data)
    assert model.cfg.sampler.pixel_prior and cache.moved is not None
    a, b = int(cache.offsets[1]), int(cache.offsets[2])  # episode 1
    frames = torch.from_numpy(np.array(ds.episode(1).frames))
    acts = torch.from_numpy(np.array(cache.actions[a + 1:b]))
    assert (acts[:, model.codec.slices["camera"]].abs().sum(1) > 0).any()  # the episode turns
    assert np.all(cache.moved[a] == 0)  # an episode's first frame has no frame before it
    got = torch.from_numpy(cache.moved[a + 1:b].astype(np.float32))
    model.set_precision("bf16" if bf16_supported(torch.device("cpu")) else "fp32")  # the numerics it was cached at
    torch.testing.assert_close(got, model.moved_latents(frames[:-1], acts), atol=2e-2, rtol=1e-2)
    still = ~model.camera_moves(acts).numpy()  # not re-encoded: the frame before's own cached latent
    assert still.any() and np.array_equal(cache.moved[a + 1:b][still], cache.latents[a:b - 1][still])
    log = [r for r in _log(run) if r["phase"] == "dit"]
    assert log and np.isfinite([r["dit_loss"] for r in log]).all()
