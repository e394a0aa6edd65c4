"""The space-time model (generation 2): its cache, its objective and sampler, training and dreaming (tiny2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsim.envs.actions import minerl_action_space
from worldsim.envs.indev.env import INDEV_KEYS
from worldsim import shortcut
from worldsim.model.actions import space_to_json
from worldsim.model.config import DiTConfig, preset
from worldsim.sampling.sampler import SpaceTimeDreamer, make_dreamer
from worldsim.model.transformer import SpaceTimeTransformer, rope2d
from worldsim.model.world_model import WorldModel


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
    for sequences three times the context, at any time offset (rotary time: only differences count)."""
    net = _net(context=5)
    b, f = 3, 15
    z, level, step, feats = _inputs(b, f)
    full = net(z, level, step, feats)
    for offset in (0, 10**7):
        cache = net.new_cache(b, "cpu")
        out = [net(z[:, t:t + 1], level[:, t:t + 1], step[:, t:t + 1], feats[:, t:t + 1],
                   torch.full((b, 1), t + offset), cache, write=1) for t in range(f)]
        assert torch.allclose(torch.cat(out, 1), full, atol=2e-5), offset
    # a rollout's calls: the newest finished frame written together with the next one, which is not written
    cache = net.new_cache(b, "cpu")
    net(z[:, :1], level[:, :1], step[:, :1], feats[:, :1], torch.zeros(b, 1, dtype=torch.long), cache, write=1)
    for t in range(1, f - 1):
        sl = slice(t, t + 2)
        two = net(z[:, sl], level[:, sl], step[:, sl], feats[:, sl], torch.arange(t, t + 2).expand(b, 2), cache, write=1)
        assert torch.allclose(two, full[:, sl], atol=2e-5), t


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
    assert torch.allclose(out[0, 0], full[0, 3], atol=2e-5)
    assert torch.allclose(out[1, 0], net(z[1:, :2], level[1:, :2], step[1:, :2], feats[1:, :2])[0, 1], atol=2e-5)


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
    """With any number of steps, the last step lands exactly on the network's clean-frame prediction."""
    target = torch.randn(2, 4, 8, 8)
    for steps in (1, 2, 4):
        seen = []

        def predict(z, level, i, seen=seen):
            seen.append((float(level[0]), i))
            return target

        out = shortcut.sample(predict, torch.randn(2, 4, 8, 8), steps, 3)
        assert torch.allclose(out, target, atol=1e-5)
        assert seen == [(n / steps, int(np.log2(steps))) for n in range(steps)]


def _tiny2_model() -> WorldModel:
    torch.manual_seed(0)
    cfg = preset("tiny2").model
    cfg.action_space_json = space_to_json(minerl_action_space(INDEV_KEYS))
    return WorldModel(cfg).eval()


def test_generation_2_refuses_the_first_models_sampling_tricks():
    cfg = preset("tiny2").model
    cfg.action_space_json = space_to_json(minerl_action_space(INDEV_KEYS))
    cfg.view_pitch = True
    with pytest.raises(ValueError, match="view_pitch"):
        WorldModel(cfg)
    cfg.view_pitch, cfg.sampler.pixel_prior = False, False  # a latent-space motion prior blurs: pixel space only
    with pytest.raises(ValueError, match="pixel space"):
        WorldModel(cfg)
    cfg.sampler.pixel_prior, cfg.sampler.steps = True, 3
    with pytest.raises(ValueError, match="power of two"):
        WorldModel(cfg)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.training.trainer import train

    root = tmp_path_factory.mktemp("st")
    collect(CollectConfig(episodes=3, steps=40, size=32, out=str(root / "ds"), seed=5, policy="mix"), progress=False)
    result = train(str(root / "ds"), str(root / "run"), "tiny2", progress=False, ae_steps=30, dit_steps=40,
                   sample_every=40, log_every=5)
    return root, result


def test_long_context_trains_and_dreams_in_the_tiny_config(tiny_run):
    """tiny2 trains on sequences of 4 and 10 frames (context 6), writes a dream video, and its dreams are the
    same under the same seed whatever else shares the batch."""
    import json

    import worldsim
    from worldsim.data.dataset import Dataset

    root, result = tiny_run
    assert result["phase"] == "done"
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    dit = [r for r in log if r["phase"] == "dit"]
    assert len(dit) == 8 and all(np.isfinite(r["dit_loss"]) and "bootstrap_loss" in r for r in dit)
    assert np.mean([r["dit_loss"] for r in dit[-3:]]) < np.mean([r["dit_loss"] for r in dit[:2]])
    assert list((root / "run" / "samples").glob("dream_*.mp4"))
    m = worldsim.load(root / "run")
    assert m.cfg.generation == 2 and m.start_frames == 2
    ep = Dataset(root / "ds").episode(0)
    flat = m.codec.encode_batch(ep.actions)
    start, acts = np.stack([ep.frames[:2]] * 3), np.stack([flat[:1]] * 3)
    d = SpaceTimeDreamer(m, start, acts, seeds=[7, 7, 8])
    alone = make_dreamer(m, start[:1], acts[:1], seed=7)
    for t in range(14):  # beyond the context of 6: the cache rolls
        f = d.step(np.stack([flat[1 + t]] * 3))
        g = alone.step(flat[None, 1 + t])
    assert f.shape == (3, 32, 32, 3) and f.dtype == np.uint8
    assert np.array_equal(f[0], f[1]) and np.abs(f[0].astype(int) - f[2].astype(int)).mean() > 5
    # alone, the same seed dreams the same frames up to the rounding of kernels picked by batch size (bf16: a
    # few percent of pixels one or two grey levels off after 14 steps)
    assert np.abs(f[0].astype(int) - g[0].astype(int)).max() <= 2 and (f[0] != g[0]).mean() < 0.05
    d.reset_rows([2], start[:1], acts[:1], seeds=[7])  # a restarted row dreams as a fresh dream does
    fresh = make_dreamer(m, start[:1], acts[:1], seed=7)
    for t in range(3):
        f = d.step(np.stack([flat[1 + t]] * 3))
        g = fresh.step(flat[None, 1 + t])
    assert np.array_equal(f[2], g[0])
    with pytest.raises(ValueError, match="at most 6 frames"):
        SpaceTimeDreamer(m, np.zeros((1, 7, 32, 32, 3), np.uint8))


def test_a_model_given_the_motion_prior_starts_as_the_model_without_it():
    """The prior's input channels start at zero (`load_extending`): a model that gains the motion prior dreams, frame
    for frame, what the model it grew from dreamed, through starts, turns and a cache that rolls."""
    from worldsim.model.world_model import load_extending

    with_prior = _tiny2_model()
    cfg = preset("tiny2").model
    cfg.action_space_json = with_prior.cfg.action_space_json
    cfg.motion_prior = cfg.sampler.pixel_prior = False
    without = WorldModel(cfg).eval()
    with torch.no_grad():
        for p in without.dit.parameters():
            p.normal_(0.0, 0.1 if p.dim() > 1 else 0.05)
    load_extending(with_prior, without.state_dict())
    with_prior.cfg.camera_px_per_deg = (0.7, 0.65)
    assert with_prior.dit.patch_in.weight.shape[1] == 2 * without.dit.patch_in.weight.shape[1]
    rng = np.random.default_rng(0)
    start = rng.integers(0, 256, (2, 2, 32, 32, 3), dtype=np.uint8)
    flat = np.zeros((10, with_prior.codec.dim), np.float32)
    flat[:, with_prior.camera] = rng.uniform(-10, 10, (10, 2))
    a, b = SpaceTimeDreamer(with_prior, start, flat[None, :1].repeat(2, 0), seed=3), \
        SpaceTimeDreamer(without, start, flat[None, :1].repeat(2, 0), seed=3)
    for t in range(1, 10):
        fa, fb = a.step(flat[None, t].repeat(2, 0)), b.step(flat[None, t].repeat(2, 0))
        assert np.array_equal(fa, fb), t
    assert a.pending_prior.abs().sum() > 0  # the prior was made (and read with zero weights)


def test_training_reads_the_prior_a_dream_makes(tiny_run):
    """The prior training reads from the latent cache (the recorded frame before, moved by the camera action and
    encoded) is the one a dream makes from its last frame's pixels, and the loss's gradient reaches the prior's
    input weights and its gated skip."""
    import worldsim
    from worldsim.training.latents import LatentCache
    from worldsim.data.dataset import Dataset
    from worldsim.training.trainer import bf16_supported

    root, _ = tiny_run
    m = worldsim.load(root / "run")
    assert m.cfg.motion_prior and any(m.cfg.camera_px_per_deg)
    cache = LatentCache(root / "run" / "latents")
    ep = Dataset(root / "ds").episode(1)
    flat = torch.from_numpy(m.codec.encode_batch(ep.actions))
    a0 = int(cache.offsets[1])
    z, acts, known, _ = cache.batch(np.array([a0]), 12)
    prior = m.sequence_prior(cache.moved_seq(np.array([a0]), 12), acts, known)[0]
    assert torch.equal(prior[0], torch.zeros_like(prior[0]))  # an episode's first frame has no frame before it
    frames = torch.from_numpy(np.array(ep.frames[:12]))
    m.set_precision("bf16" if bf16_supported(torch.device("cpu")) else "fp32")  # the numerics the cache was built at
    dream = m.pixel_prior(frames[:11], flat[:11])  # what a dream makes for frames 1..11 from the frames before
    m.set_precision("fp32")
    assert torch.allclose(prior[1:], dream, atol=0.02)
    m.train()
    loss, _ = m.sequence_loss(z, acts, known, 0.25, 0.5, 0.8, torch.Generator().manual_seed(0),
                              moved=cache.moved_seq(np.array([a0]), 12))
    loss.backward()
    c = m.cfg.ae.latent_channels * m.cfg.dit.patch ** 2
    assert m.dit.patch_in.weight.grad[:, c:].abs().sum() > 0
    assert m.dit.prior_gate.weight.grad.abs().sum() > 0  # and the prior's skip to the prediction
    with pytest.raises(ValueError, match="moved"):
        m.sequence_loss(z, acts, known, 0.25, 0.5, 0.8)
