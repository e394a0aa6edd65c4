"""Training on real (tiny) rollouts: the phases, checkpoints, resume, warm starts, self forcing, DDP, the CLI."""

from __future__ import annotations

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
from worldsim.model.checkpoint import CheckpointError, save_checkpoint
from worldsim.sampling.sampler import Sampler
from worldsim.training.config import preset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from worldsim.data_collect.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("data") / "ds32"
    collect(CollectConfig(episodes=3, steps=40, size=32, out=str(out), seed=5, policy="mix"), progress=False)
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    from worldsim.training.trainer import train

    run = tmp_path_factory.mktemp("run") / "run"
    result = train(str(tiny_data), str(run), "tiny", progress=False, ae_steps=40, dit_steps=40, sample_every=40,
                   log_every=5)
    return run, result


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_tiny_trains_every_phase_and_the_checkpoint_alone_rebuilds_the_model(tiny_run, tmp_path):
    run, result = tiny_run
    assert result["phase"] == "done"
    log = _log(run)
    ae = [r["ae_loss"] for r in log if r["phase"] == "ae"]
    dit = [r for r in log if r["phase"] == "dit"]
    assert ae[-1] < 0.7 * ae[0]
    assert len(dit) == 8 and all(np.isfinite(r["dit_loss"]) and "bootstrap_loss" in r for r in dit)
    assert np.mean([r["dit_loss"] for r in dit[-3:]]) < np.mean([r["dit_loss"] for r in dit[:2]])
    assert any(r["phase"] == "heads" for r in log)
    assert list((run / "samples").glob("dream_*.mp4"))
    model = worldsim.load(run)
    assert model.checkpoint_meta["dataset"]["episodes"] == 3 and bool(model.heads_trained) and model.start_frames == 2
    save_checkpoint(tmp_path / "copy", model)
    again = worldsim.load(tmp_path / "copy")
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))


def test_training_reads_the_prior_a_dream_makes(tiny_run, tiny_data):
    """The prior training reads from the latent cache (the recorded frame before, moved by the camera action and
    encoded) is the one a dream makes from its last frame's pixels, and the loss's gradient reaches the prior's
    input weights and its gated skip."""
    from worldsim.data.dataset import Dataset
    from worldsim.training.latents import LatentCache
    from worldsim.training.objective import sequence_loss
    from worldsim.training.trainer import bf16_is_native

    run, _ = tiny_run
    m = worldsim.load(run)
    assert m.prior is not None and any(m.cfg.camera_px_per_deg)
    cache = LatentCache(run / "latents")
    ep = Dataset(tiny_data).episode(1)
    flat = torch.from_numpy(m.codec.encode_batch(ep.actions))
    a0 = int(cache.offsets[1])
    z, acts, known = cache.batch(np.array([a0]), 12)
    moved = cache.moved_seq(np.array([a0]), 12)
    prior = m.prior.sequence(moved, acts, known)[0]
    assert torch.equal(prior[0], torch.zeros_like(prior[0]))  # an episode's first frame has no frame before it
    frames = torch.from_numpy(np.array(ep.frames[:12]))
    m.set_precision("bf16" if bf16_is_native(torch.device("cpu")) else "fp32")  # as the cache was built
    dream = m.prior.follow(m.encode(frames[:11]), frames[:11], flat[:11])  # a dream's for frames 1..11 from the frames before
    m.set_precision("fp32")
    assert torch.allclose(prior[1:], dream, atol=0.05)  # fp16 storage of the cache, bf16 encoder kernels
    m.train()
    loss, _ = sequence_loss(m, z, acts, known, 0.25, 0.5, 0.8, torch.Generator().manual_seed(0), moved=moved)
    loss.backward()
    c = m.cfg.ae.latent_channels * m.cfg.dit.patch ** 2
    assert m.dit.patch_in.weight.grad[:, c:].abs().sum() > 0
    assert m.dit.prior_gate.weight.grad.abs().sum() > 0  # and the prior's skip to the prediction
    with pytest.raises(ValueError, match="moved"):
        sequence_loss(m, z, acts, known, 0.25, 0.5, 0.8)


def test_a_grown_datasets_cache_encodes_only_the_new_episodes(tiny_run, tiny_data, tmp_path):
    """A latent cache rebuilt for more episodes copies the rows of the episodes it held (the frozen autoencoder
    would encode them to the same latents) and runs the encoder on the new episodes' frames only; the result is
    the cache built from scratch."""
    from worldsim.data.dataset import Dataset
    from worldsim.training.latents import LatentCache
    from worldsim.training.trainer import bf16_is_native

    run, _ = tiny_run
    m = worldsim.load(run).set_precision("bf16" if bf16_is_native(torch.device("cpu")) else "fp32")
    ds = Dataset(tiny_data)
    old = LatentCache.build(tmp_path / "old", ds, m, [0, 1], progress=False)
    LatentCache.write_pixel_prior(tmp_path / "old", ds, m, progress=False)
    old = LatentCache(tmp_path / "old")
    encoded = []
    encode = m.encode
    m.encode = lambda frames: encoded.append(len(frames)) or encode(frames)
    m.prior.encode = m.encode
    grown = LatentCache.build(tmp_path / "grown", ds, m, [0, 1, 2], progress=False, reuse=old)
    LatentCache.write_pixel_prior(tmp_path / "grown", ds, m, progress=False, reuse=old)
    assert old.prefix_of(ds, [0, 1, 2]) == 2 and old.prefix_of(ds, [1, 2]) == 0
    new_frames = ds.episode_length(2) + 1
    assert 0 < sum(encoded) <= 2 * new_frames  # the latents and the moved frames of episode 2, nothing before
    m.encode = encode
    m.prior.encode = encode
    fresh = LatentCache.build(tmp_path / "fresh", ds, m, [0, 1, 2], progress=False)
    LatentCache.write_pixel_prior(tmp_path / "fresh", ds, m, progress=False)
    grown, fresh = LatentCache(tmp_path / "grown"), LatentCache(tmp_path / "fresh")
    assert grown.episodes == fresh.episodes and np.array_equal(grown.offsets, fresh.offsets)
    for name in ("latents", "actions", "known", "moved"):  # same model, same batches, one machine
        np.testing.assert_array_equal(getattr(grown, name), getattr(fresh, name))


def test_a_prior_moved_by_the_view_stays_put_where_the_view_did(tiny_run, tiny_data, tmp_path):
    """`TrainConfig.prior_turn` "view": each recorded frame's prior is moved by the turn its view made (the
    episode's poses), not by the camera action: where the action moved a GUI's cursor instead of the view the prior
    is the unmoved frame, where the view followed the action it is the action's prior; training fills the strip
    the view's turn revealed, and a run trains on such priors."""
    from worldsim.data.dataset import Dataset
    from worldsim.training.latents import LatentCache
    from worldsim.training.trainer import bf16_is_native, train

    run, _ = tiny_run
    m = worldsim.load(run).set_precision("bf16" if bf16_is_native(torch.device("cpu")) else "fp32")
    ds = Dataset(tiny_data)
    root = tmp_path / "cache"
    LatentCache.build(root, ds, m, [0, 1, 2], progress=False)
    LatentCache.write_pixel_prior(root, ds, m, progress=False)
    LatentCache.write_pixel_prior(root, ds, m, progress=False, prior_turn="view")
    by_action, by_view = LatentCache(root), LatentCache(root, "view")
    assert by_action.turns is None and by_view.turns is not None
    for e, a in zip(range(3), by_view.offsets[:-1]):
        turns = ds.episode(e).view_turns()
        np.testing.assert_allclose(by_view.turns[a + 1:a + 1 + len(turns)], turns, atol=1e-4)
    cam = m.prior.camera
    known = np.asarray(by_view.known) > 0
    action, view = np.asarray(by_action.actions)[:, cam], np.asarray(by_view.turns)
    same = known & (np.abs(action - view).max(1) < 1e-4)
    cursor = np.flatnonzero(known & (np.abs(view).max(1) == 0) & (np.abs(action).max(1) > 0))
    assert len(cursor) > 0 and same.sum() > len(cursor)  # the mix policy opens its inventory and turns
    np.testing.assert_allclose(by_view.moved[same], by_action.moved[same], atol=0.05)  # bf16 kernels, other batches
    np.testing.assert_array_equal(by_view.moved[cursor], by_view.latents[cursor - 1])  # the unmoved frame
    assert np.abs(by_action.moved[cursor].astype(np.float32) - by_view.latents[cursor - 1]).mean() > 0.01
    starts = np.array([int(by_view.offsets[1])])
    _, flat, _ = by_view.batch(starts, 12)
    filled_by = by_view.prior_actions(starts, 12, flat, cam)
    idx = starts[:, None] + np.arange(12)
    assert torch.equal(filled_by[..., cam], torch.from_numpy(view[idx]))
    assert torch.equal(by_action.prior_actions(starts, 12, flat, cam), flat)
    with pytest.raises(ValueError, match="prior_turn must be one of"):
        LatentCache(root, "mouse")

    out = tmp_path / "view_run"
    r = train(str(tiny_data), str(out), "tiny", progress=False, ae_steps=5, dit_steps=4, heads_steps=2, log_every=1,
              sample_every=10**6, prior_turn="view", self_forcing=1.0)
    assert r["phase"] == "done" and (out / "latents" / "moved_view.f16").exists()
    assert all(np.isfinite(x["dit_loss"]) for x in _log(out) if x["phase"] == "dit")


def test_a_rotation_prior_run_caches_rotated_frames_and_dreams_with_them(tiny_run, tiny_data, tmp_path):
    """`TrainConfig.prior_turn` "rotation": the cache holds each recorded frame rotated by its view's turn from its
    recorded pitch (and the pitches, which self-forced dreams start from); only a model of that geometry writes
    it; a run trained so stores the geometry in its checkpoint, so every dream of it rotates its priors too."""
    from worldsim.data.dataset import Dataset
    from worldsim.training.latents import LatentCache
    from worldsim.training.trainer import Trainer, bf16_is_native, train

    run, _ = tiny_run
    m = worldsim.load(run).set_precision("bf16" if bf16_is_native(torch.device("cpu")) else "fp32")
    ds = Dataset(tiny_data)
    root = tmp_path / "cache"
    LatentCache.build(root, ds, m, [0, 1], progress=False)
    with pytest.raises(ValueError, match="geometry"):
        LatentCache.write_pixel_prior(root, ds, m, progress=False, prior_turn="rotation")
    m.prior.geometry = "rotation"
    LatentCache.write_pixel_prior(root, ds, m, progress=False, prior_turn="rotation")
    cache = LatentCache(root, "rotation")
    ep, a = ds.episode(1), int(cache.offsets[1])
    np.testing.assert_allclose(cache.pitch[a:a + len(ep.frames)], ep.view_pitch())
    turns = ep.view_turns()
    t = int(np.flatnonzero(np.abs(turns).max(1) > 1)[0])  # the first step whose view turned
    flat = torch.zeros(1, m.codec.dim)
    flat[0, m.prior.camera] = torch.from_numpy(turns[t]).float()
    want = m.prior.moved(torch.from_numpy(ep.frames[t:t + 1].copy()), flat, torch.tensor(ep.view_pitch()[t:t + 1]))
    np.testing.assert_allclose(cache.moved[a + t + 1], want[0].detach().numpy(), atol=0.05)  # float16, other batch sizes
    assert cache.view_pitch(np.array([a]), 3).shape == (1, 3) and LatentCache(root, "view").view_pitch(np.array([a]), 3) is None

    out = tmp_path / "rotation_run"
    r = train(str(tiny_data), str(out), "tiny", progress=False, ae_steps=5, dit_steps=4, heads_steps=2, log_every=1,
              sample_every=10**6, prior_turn="rotation", self_forcing=1.0)
    assert r["phase"] == "done" and (out / "latents" / "moved_rot.f16").exists()
    assert all(np.isfinite(x["dit_loss"]) for x in _log(out) if x["phase"] == "dit")
    assert worldsim.load(out).prior.geometry == "rotation" and worldsim.load(run).prior.geometry == "shift"
    p = preset("tiny")
    p.train.prior_turn = "rotation"
    warm = Trainer(str(tiny_data), str(tmp_path / "warm"), p.model, p.train, progress=False, init=str(out))
    assert warm.latents().pitch is not None  # a warm start reuses the run's cache with its pitches, not level views
    np.testing.assert_array_equal(warm.latents().pitch, LatentCache(out / "latents", "rotation").pitch)


@pytest.mark.parametrize("frames,after,steps", [(2, 0, None), (5, 0, None), (2, 2, None), (3, 1, 1)])
def test_self_forcing_feeds_the_models_own_dream_as_a_dream_makes_it(tiny_run, frames, after, steps):
    """`own_dream` continues real sequences exactly as a Sampler from their real frames does (same seeds, same
    frames) for `frames` frames, keeps the frames before (and the `after` frames after) real, and gives each
    dreamed frame, and the first real one after, the prior the dream made; with real frames after, the dreamed
    ones are out of the loss; `steps` dreams at that many shortcut steps a frame, as such a Sampler does. It refuses
    to dream a whole sequence (nothing real to start from)."""
    from worldsim.training.latents import LatentCache
    from worldsim.training.objective import own_dream

    run, _ = tiny_run
    m = worldsim.load(run)
    cache = LatentCache(run / "latents")
    starts = np.array([0, int(cache.offsets[1]) + 3])
    z, a, known = cache.batch(starts, 6)
    moved = cache.moved_seq(starts, 6)
    inputs, priors, weight = own_dream(m, z, a, known, moved, np.random.default_rng(3), "fp32", frames, after, steps)
    first, end = 6 - frames - after, 6 - after
    assert torch.equal(inputs[:, :first], z[:, :first]) and torch.equal(inputs[:, end:], z[:, end:])
    assert not torch.allclose(inputs[:, first:end], z[:, first:end], atol=1e-2)
    assert torch.equal(weight[:, first:end], torch.full_like(weight[:, first:end], 0.0 if after else 1.0))
    assert torch.equal(weight[:, :first], torch.ones_like(weight[:, :first]))
    seeds = [int(x) for x in np.random.default_rng(3).integers(0, 2**31 - 1, 2)]
    ref = Sampler(m, m.decode(z[:, :first]), a[:, 1:first], steps=steps, seeds=seeds)
    for t in range(first, end):
        ref.step(a[:, t])
        torch.testing.assert_close(inputs[:, t], ref.pending, atol=1e-5, rtol=0)
        torch.testing.assert_close(priors[:, t], ref.pending_prior, atol=1e-5, rtol=0)
    if after:
        torch.testing.assert_close(priors[:, end], m.prior.follow(ref.pending, ref.last_frame, a[:, end]), atol=1e-5, rtol=0)
    assert m.precision == "fp32" and not m.training
    with pytest.raises(ValueError, match="self forcing dreams 1 to"):
        own_dream(m, z, a, known, moved, np.random.default_rng(3), "fp32", 6 - after, after)


def test_a_self_forced_run_trains(tiny_data, tmp_path):
    from worldsim.training.trainer import train

    run = tmp_path / "sf"
    r = train(str(tiny_data), str(run), "tiny", progress=False, ae_steps=5, dit_steps=10, heads_steps=2,
              log_every=1, sample_every=10**6, self_forcing=1.0, self_forcing_frames=1, self_forcing_after=1)
    assert r["phase"] == "done"
    dit = [x for x in _log(run) if x["phase"] == "dit"]
    assert any(x["self_forced"] == 1.0 for x in dit) and all(np.isfinite(x["dit_loss"]) for x in dit)


def test_a_noised_prior_is_a_hint_trained_and_sampled_alike(tiny_run, tiny_data, tmp_path):
    """`prior_noise`: training mixes noise into each frame's prior (none where no frame came before), the
    checkpoint then samples at half the largest level, and a dream of such a model is still seeded (same seed,
    same frames) while its noised prior differs from the clean one."""
    from worldsim.training.objective import noised_prior
    from worldsim.training.trainer import train

    prior = torch.ones(2, 3, 4, 2, 2)
    known = torch.tensor([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    out = noised_prior(prior, torch.tensor([[0.5, 0.0, 1.0], [0.25, 0.25, 0.25]]), known, torch.Generator().manual_seed(0))
    assert torch.equal(out[0, 0], torch.zeros(4, 2, 2)) and torch.equal(out[0, 1], prior[0, 1])  # unknown / clean
    assert not torch.allclose(out[0, 2], prior[0, 2]) and abs(float(out[1].mean()) - 0.75) < 0.3

    run = tmp_path / "pn"
    r = train(str(tiny_data), str(run), "tiny", progress=False, ae_steps=5, dit_steps=10, heads_steps=2,
              sample_every=10**6, prior_noise=0.4)
    assert r["phase"] == "done"
    m = worldsim.load(run, "cpu", "fp32")
    assert m.cfg.sampler.prior_noise == pytest.approx(0.2)
    frames = np.random.default_rng(0).integers(0, 255, (1, m.start_frames, 32, 32, 3), dtype=np.uint8)
    acts = np.zeros((1, m.start_frames - 1, m.codec.dim), np.float32)
    a = np.zeros((1, m.codec.dim), np.float32)
    one, two = Sampler(m, frames, acts, seeds=[4]), Sampler(m, frames, acts, seeds=[4])
    assert np.array_equal(one.step(a).frames, two.step(a).frames)
    clean = m.prior(torch.from_numpy(frames[:, -1]), torch.from_numpy(a))  # the stepped frame's prior, un-noised
    assert not torch.allclose(one.pending_prior, clean, atol=1e-3)
    assert torch.allclose(one.pending_prior, clean, atol=5.0)  # a hint still: 0.8 of it plus noise
    # the run goes on with a clean prior: its checkpoints then sample with a clean one too
    train(str(tiny_data), str(run), "tiny", resume=True, progress=False, ae_steps=5, dit_steps=12, heads_steps=2,
          sample_every=10**6, prior_noise=0.0)
    assert worldsim.load(run, "cpu", "fp32").cfg.sampler.prior_noise == 0.0


def test_a_run_resumes_on_its_grown_dataset(tiny_data, tmp_path):
    """More episodes collected into a run's dataset (the campaign's data grows): the resumed run's latent cache
    comes to hold all of them (the new ones encoded, the old ones kept) and the run trains on."""
    import shutil

    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.training.trainer import train

    data = tmp_path / "ds"
    shutil.copytree(tiny_data, data)
    opts = dict(ae_steps=5, dit_steps=12, heads_steps=2, checkpoint_every=4, sample_every=10**6, progress=False)
    r = train(str(data), str(tmp_path / "run"), "tiny", stop_after=9, **opts)  # inside the dynamics phase
    assert r["stopped_early"] and r["phase"] == "dit"
    assert json.loads((tmp_path / "run" / "latents" / "index.json").read_text())["episodes"] == [0, 1, 2]
    collect(CollectConfig(episodes=4, steps=40, size=32, out=str(data), seed=5, policy="mix"), progress=False)
    r = train(str(data), str(tmp_path / "run"), "tiny", resume=True, **opts)
    assert r["phase"] == "done"
    index = json.loads((tmp_path / "run" / "latents" / "index.json").read_text())
    assert index["episodes"] == [0, 1, 2, 3] and (tmp_path / "run" / "latents" / "moved.f16").exists()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["val_episodes"] == [2, 3]


def test_resume_continues_the_same_loss_curve(tiny_data, tmp_path):
    from worldsim.training.trainer import train

    opts = dict(ae_steps=20, dit_steps=30, decoder_steps=10, checkpoint_every=10, log_every=5, sample_every=10**6,
                progress=False)
    train(str(tiny_data), str(tmp_path / "straight"), "tiny", **opts)
    r = train(str(tiny_data), str(tmp_path / "split"), "tiny", stop_after=12, **opts)  # stops inside the AE phase
    assert r["stopped_early"] and r["phase"] == "ae"
    r = train(str(tiny_data), str(tmp_path / "split"), "tiny", resume=True, stop_after=17, **opts)  # inside dynamics
    assert r["stopped_early"] and r["phase"] == "dit"
    with open(tmp_path / "split" / "log.jsonl", "a") as f:  # a line written after the last checkpoint, then killed
        f.write(json.dumps({"phase": "dit", "step": 99, "dit_loss": 0.0}) + "\n")
    train(str(tiny_data), str(tmp_path / "split"), "tiny", resume=True, **opts)
    key = lambda r: (r["phase"], r["step"], [r.get(f"{p}_loss") for p in ("ae", "dit", "heads", "decoder")])  # noqa: E731
    straight = [key(r) for r in _log(tmp_path / "straight")]
    split = [key(r) for r in _log(tmp_path / "split")]
    assert [k for k in straight if k[0] == "heads"] and [k for k in straight if k[0] == "decoder"]
    assert split == straight


def test_resume_keeps_the_settings_the_run_was_started_with(tiny_data, tmp_path):
    """A run started with 12 dynamics steps and killed stays a 12-step run when resumed with no step options (the
    tiny preset says 30); an option given on resume still wins, and a finished run extended with more dynamics
    steps keeps its heads; extended from its last step (`schedule_start`, as `worldsim continue` does), its
    learning rate warms up again to the peak and decays to the new end."""
    from worldsim.model.checkpoint import load_train_state
    from worldsim.training.trainer import train

    run = tmp_path / "run"
    r = train(str(tiny_data), str(run), "tiny", ae_steps=5, dit_steps=12, heads_steps=5, decoder_steps=0,
              checkpoint_every=4, sample_every=10**6, progress=False, stop_after=9)
    assert r["stopped_early"] and r["phase"] == "dit"
    assert train(str(tiny_data), str(run), "tiny", resume=True, progress=False)["phase"] == "done"
    assert load_train_state(run)[1]["dit_done"] == 12
    assert max(rec["step"] for rec in _log(run) if rec["phase"] == "dit") <= 12
    before = worldsim.load(run)
    train(str(tiny_data), str(run), "tiny", resume=True, progress=False, dit_steps=24, schedule_start=12, warmup=3,
          log_every=1)
    assert load_train_state(run)[1]["dit_done"] == 24
    lr = {rec["step"]: rec["lr"] for rec in _log(run) if rec["phase"] == "dit" and rec["step"] > 12}
    assert lr[13] < lr[15] == pytest.approx(1e-3) and lr[24] < 0.2e-3  # a warm restart: warm-up, peak, cosine
    after = worldsim.load(run)
    assert all(torch.equal(p, q) for (n, p), q in zip(before.state_dict().items(), after.state_dict().values())
               if n.startswith("heads."))
    assert not torch.equal(before.dit.blocks[0].qkv.weight, after.dit.blocks[0].qkv.weight)


def test_decoder_fine_tuning_keeps_the_latents_and_sharpens_the_frames(tiny_data, tmp_path):
    """A finished run resumed with decoder steps trains the decoder alone: encoder, dynamics model and heads (and
    so every latent the dynamics model was trained on) stay bit-identical, reconstructions improve."""
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


def test_a_warm_start_keeps_the_export_raw_and_averaged(tiny_run, tiny_data, tmp_path):
    """`--init` from an export made with the raw weights starts the new run with the source's EMA as its EMA and
    the raw weights as its raw weights (nothing lost); from a plain export, both from the EMA. Its autoencoder,
    heads and latent cache are the source's; another autoencoder is refused naming the option."""
    from safetensors.torch import load_file

    from worldsim.cli import main
    from worldsim.model.checkpoint import RAW_WEIGHTS, raw_dynamics
    from worldsim.training.trainer import Trainer

    run, _ = tiny_run
    assert main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "exp"), "--raw"]) == 0
    raw = load_file(str(tmp_path / "exp" / RAW_WEIGHTS))
    mask = os.umask(0)
    os.umask(mask)
    assert all(f.stat().st_mode & 0o666 == 0o666 & ~mask for f in (tmp_path / "exp").iterdir())  # as any write
    assert set(raw) == {k for k in worldsim.load(run).state_dict() if k.startswith("dit.")}
    torch.testing.assert_close(raw, raw_dynamics(run))
    p = preset("tiny")
    t = Trainer(str(tiny_data), str(tmp_path / "warm"), p.model, p.train, progress=False, init=str(tmp_path / "exp"))
    src = worldsim.load(tmp_path / "exp")
    assert t.phase == "dit"
    assert all(torch.equal(t.model.state_dict()[k], v) for k, v in raw.items())
    assert all(torch.equal(t.ema.model.state_dict()[k], v) for k, v in src.state_dict().items())
    assert torch.equal(t.model.ae.encoder.net[0].weight, src.ae.encoder.net[0].weight) and bool(t.model.heads_trained)
    assert t.model.cfg.camera_px_per_deg == src.cfg.camera_px_per_deg  # a warm start continues that model
    from_run = Trainer(str(tiny_data), str(tmp_path / "warm2"), p.model, p.train, progress=False, init=str(run))
    assert from_run.phase == "dit"  # a run's latent cache is reused (linked) when the data is the same
    assert (tmp_path / "warm2" / "latents" / "latents.f16").stat().st_size == (run / "latents" / "latents.f16").stat().st_size
    assert main(["export", "--checkpoint", str(tmp_path / "exp"), "--out", str(tmp_path / "fp16"), "--fp16"]) == 0
    assert not (tmp_path / "fp16" / RAW_WEIGHTS).exists()
    assert main(["export", "--checkpoint", str(tmp_path / "fp16"), "--out", str(tmp_path / "x"), "--raw"]) == 2
    bad = preset("tiny")
    bad.model.ae.latent_channels = 8
    with pytest.raises(ValueError, match="--init"):
        Trainer(str(tiny_data), str(tmp_path / "bad"), bad.model, bad.train, progress=False, init=str(tmp_path / "exp"))


def test_bad_checkpoints_fail_with_a_clear_error(tiny_run, tmp_path):
    import shutil

    run, _ = tiny_run
    ckpt = tmp_path / "ckpt"
    shutil.copytree(worldsim.model.checkpoint.resolve(run), ckpt)
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


def test_the_train_command_takes_every_config_field_by_its_name(tiny_data, tmp_path):
    """`worldsim train` has one option per TrainConfig field, named and measured as the field, with its docstring
    as help; what it is given reaches the run's config."""
    import dataclasses

    from worldsim.cli import build_parser, main
    from worldsim.training.config import TrainConfig

    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in help_text, f.name
    assert "Seconds the whole run may take" in help_text and "--no-bf16" in help_text
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_data), "--preset", "tiny", "--out", str(run), "--ae-steps", "3",
                 "--dit-steps", "4", "--heads-steps", "2", "--self-forcing", "0.5", "--no-bf16", "--quiet"]) == 0
    stored = json.loads((run / "run.json").read_text())["train"]
    assert (stored["ae_steps"], stored["dit_steps"], stored["self_forcing"], stored["bf16"]) == (3, 4, 0.5, False)


def test_ddp_two_processes_gloo_replicas_stay_in_sync(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a crash shows where it happened
    with socket.socket() as sock:  # a free port: a fixed one can still be held by an earlier run (TIME_WAIT)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "worldsim.cli", "train", "--data", str(tiny_data), "--preset", "tiny", "--out", str(run),
           "--ae-steps", "6", "--dit-steps", "6", "--num-threads", "1", "--quiet", "--sample-every", "1000"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    sync = json.loads((run / "ddp_sync.json").read_text())
    assert sync["world_size"] == 2 and sync["in_sync"]
    assert sync["checksums"][0] == sync["checksums"][1]


def test_still_forcing_dreams_long_stands_whose_real_frames_stay_the_target(tmp_path):
    """`LatentCache.still_windows` finds exactly the windows in which every action after the first frame is the
    no-op; a still-forced run dreams such windows from their first real frames and trains on them."""
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.training.latents import LatentCache
    from worldsim.training.trainer import train

    data = tmp_path / "spawn"  # seed 0: the first episode stands still at the spawn throughout, the second moves
    collect(CollectConfig(episodes=2, steps=40, size=32, out=str(data), seed=0, policy="mix-spawn"), progress=False)
    out = tmp_path / "still"
    r = train(str(data), str(out), "tiny", progress=False, ae_steps=5, dit_steps=8, heads_steps=2, log_every=1,
              sample_every=10**6, still_forcing=1.0, still_forcing_real=2)
    assert r["phase"] == "done"
    dit = [x for x in _log(out) if x["phase"] == "dit"]
    assert any(x["still_forced"] == 1.0 for x in dit) and all(np.isfinite(x["dit_loss"]) for x in dit)

    m = worldsim.load(out)
    cache = LatentCache(out / "latents")
    noop = np.asarray(m.codec.encode(m.codec.noop()), np.float32)
    acts, known = np.asarray(cache.actions), np.asarray(cache.known)
    for n in (3, 10):
        brute = [s for s in cache.windows(n) if all(known[s + 1:s + n]) and (acts[s + 1:s + n] == noop).all()]
        found = cache.still_windows(n, noop).tolist()
        assert found == brute and 0 < len(found) < len(cache.windows(n))
    with pytest.raises(ValueError, match="still_forcing_real must be 1 to"):
        train(str(data), str(tmp_path / "bad"), "tiny", progress=False, ae_steps=5, dit_steps=2,
              still_forcing=0.5, still_forcing_real=10)


def test_decoder_tuning_draws_the_models_own_dreams_closer_to_the_real_frames(tiny_run, tiny_data, tiny_ckpt,
                                                                             tmp_path):
    """`worldsim tune-decoder` dreams from the dataset's starts under its recorded actions, keeps the dreams in a
    bank file (a rerun reads them back), and trains the decoder alone: the encoder, dynamics model and heads stay
    bit-identical, and the dreamed latents decode closer to the real frames they stand for. Tuning goes on from an
    earlier tuned decoder only of the same encoder."""
    from safetensors.torch import load_file

    from worldsim.cli import main
    from worldsim.evaluation.evaluate import frame_metrics

    run, _ = tiny_run
    bank_file, out = tmp_path / "bank.safetensors", tmp_path / "tuned"
    args = ["tune-decoder", "--checkpoint", str(run), "--data", str(tiny_data), "--out", str(out), "--minutes", "5",
            "--max-steps", "60", "--adversarial", "0", "--clips", "6", "--horizon", "4", "--bank", str(bank_file), "--lr", "3e-4",
            "--num-threads", "1", "--quiet"]
    assert main(args) == 0
    bank = load_file(str(bank_file))
    assert bank["latents"].shape[0] == bank["frames"].shape[0] == 24 and set(bank["horizon"].tolist()) == {1, 2, 3, 4}
    before, after = worldsim.load(run), worldsim.load(out)
    changed = {".".join(n.split(".")[:2]) for (n, p), q in zip(before.state_dict().items(), after.state_dict().values())
               if not torch.equal(p, q)}
    assert changed == {"ae.decoder"}
    assert after.checkpoint_meta["decoder_tune"]["steps"] == 60
    real = bank["frames"].numpy()
    with torch.no_grad():
        psnr = {name: frame_metrics(m.decode(bank["latents"].float()).numpy(), real)[0].mean()
                for name, m in (("before", before), ("after", after))}
    assert psnr["after"] > psnr["before"] + 0.1, psnr  # measured: +0.29 dB
    # with the discriminator (its loss reaches the decoder after 4 steps); the bank is read, not dreamed again
    stamp = bank_file.stat().st_mtime_ns
    again = ["--out", str(tmp_path / "again"), "--max-steps", "8", "--adversarial", "0.5", "--adversarial-after", "4",
             "--texture", "1", "--decoder-from", str(out)]
    assert main(args + again) == 0
    assert bank_file.stat().st_mtime_ns == stamp
    assert worldsim.load(tmp_path / "again").checkpoint_meta["decoder_tune"]["steps"] == 8
    with pytest.raises(SystemExit, match="encoder"):
        main(args + ["--out", str(tmp_path / "other"), "--decoder-from", tiny_ckpt])


def test_texture_energy_measures_fine_texture_where_it_lies(tiny_data):
    """The texture loss's measure: zero on a flat frame, lower on a blurred real frame than on the real one, and
    local: texture added to one patch shows in that patch alone."""
    import torch.nn.functional as F

    from worldsim.data.dataset import Dataset
    from worldsim.model.autoencoder import to_pixels
    from worldsim.training.decoder_tune import texture_energy

    x = to_pixels(torch.from_numpy(Dataset(tiny_data).episode(0).frames[:4].copy()))
    assert texture_energy(torch.zeros_like(x)).abs().max() == 0
    blurred = F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear")
    assert (texture_energy(blurred).mean((1, 2, 3)) < texture_energy(x).mean((1, 2, 3))).all()
    flat = torch.zeros(1, 3, 32, 32)
    flat[..., 8:16, 16:24] = torch.rand(1, 3, 8, 8) * 2 - 1
    e = texture_energy(flat)
    assert e[..., 1, 2].min() > 0.1 and e.sum() - e[..., 1, 2].sum() < 0.25 * e[..., 1, 2].sum()  # its edges leak into the patches before it


def test_still_start_trains_walks_begun_from_a_standing_player(tmp_path):
    """`LatentCache.walk_windows` finds exactly the windows whose actions into two given frames press a movement
    key; `stood_then` makes a window's first frames a stand (copies of the last of them, the no-op into each,
    their priors that frame unmoved) and leaves the walk after it as recorded; a still-started run trains on them."""
    import torch

    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.model.actions import MOVEMENT_KEYS
    from worldsim.training.latents import LatentCache
    from worldsim.training.phases import stood_then
    from worldsim.training.trainer import train

    data = tmp_path / "trees"
    collect(CollectConfig(episodes=3, steps=60, size=32, out=str(data), seed=0, policy="mix-trees"), progress=False)
    out = tmp_path / "run"
    r = train(str(data), str(out), "tiny", progress=False, ae_steps=5, dit_steps=8, heads_steps=2, log_every=1,
              sample_every=10**6, still_start=1.0, still_start_frames=2, self_forcing=1.0)
    assert r["phase"] == "done"
    dit = [x for x in _log(out) if x["phase"] == "dit"]
    assert any(x["still_started"] == 1.0 for x in dit) and all(np.isfinite(x["dit_loss"]) for x in dit)

    m = worldsim.load(out)
    cache = LatentCache(out / "latents")
    moving = [m.codec.slices[k] for k in MOVEMENT_KEYS if k in m.codec.space.spaces]
    acts, known = np.asarray(cache.actions), np.asarray(cache.known)
    walks = lambda i: known[i] > 0 and any((acts[i, sl] > 0.5).any() for sl in moving)  # noqa: E731
    for n, at in ((4, 1), (8, 3)):
        brute = [s for s in cache.windows(n) if walks(s + at) and walks(s + at + 1)]
        found = cache.walk_windows(n, at, moving).tolist()
        assert found == brute and 0 < len(found) < len(cache.windows(n))

    pick = cache.walk_windows(8, 3, moving)[:3]
    z, a, _ = cache.batch(pick, 8)
    moved, pitch = cache.moved_seq(pick, 8), cache.view_pitch(pick, 8)
    moved_by = cache.prior_actions(pick, 8, a, m.prior.camera)
    noop = torch.from_numpy(np.asarray(m.codec.encode(m.codec.noop()), np.float32))
    z2, a2, moved2, by2, pitch2 = stood_then(4, noop, z, a, moved, moved_by, pitch)
    for j in range(4):
        assert torch.equal(z2[:, j], z[:, 3]) and torch.equal(moved2[:, j], z[:, 3].to(moved2.dtype))
        assert (a2[:, j] == noop).all() and (by2[:, j] == noop).all()
    assert torch.equal(z2[:, 4:], z[:, 4:]) and torch.equal(a2[:, 4:], a[:, 4:]) and torch.equal(moved2[:, 4:], moved[:, 4:])
    assert torch.equal(z[:, 0], cache.batch(pick, 8)[0][:, 0])  # the cache's windows are left as recorded
    if pitch is not None:
        assert torch.equal(pitch2[:, :4], pitch[:, 3:4].expand(-1, 4)) and torch.equal(pitch2[:, 4:], pitch[:, 4:])
    with pytest.raises(ValueError, match="still_start_frames must be 1 to"):
        train(str(data), str(tmp_path / "bad"), "tiny", progress=False, ae_steps=5, dit_steps=2,
              still_start=0.5, still_start_frames=40)
