"""The model shipped inside the package: loads with no arguments, no download, and dreams follow the actions."""

import json

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import worldsim.envs  # noqa: F401
from tests.conftest import act
from worldsim.model.checkpoint import DEFAULT_CHECKPOINT


def _sky(frame: np.ndarray) -> float:
    """Share of bright-blue (sky) pixels."""
    f = frame.astype(int)
    return float(((f[..., 2] > 180) & (f[..., 2] > f[..., 0] + 40)).mean())


def test_shipped_checkpoint_is_small_self_contained_and_loads_with_no_arguments():
    files = {p.name: p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir()}
    assert set(files) <= {"config.json", "model.safetensors", "openings.safetensors", "raw.safetensors"}
    assert sum(files.values()) <= 50e6
    cfg = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())
    assert cfg["dataset"]["steps"] >= 100_000 and cfg["model"]["sampler"]["steps"] <= 3
    env = gym.make("worldsim/NeuralMinecraft-v0")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (64, 64, 3) and env.unwrapped.context_length == 4
    obs, _ = env.reset(seed=0)
    frames = [env.step(act(env.action_space, forward=1, camera=[0, 2]))[0] for _ in range(20)]
    assert all(f.std() > 5 for f in frames)  # a scene, not a flat image
    assert env.unwrapped.model.heads_trained


def test_shipped_dreams_look_up_and_down_as_asked():
    """Over the shipped bank's openings with sky in view, 8 steps of looking down 5 degrees a step show less sky
    than standing still, and looking up shows more than looking down. (The Indev model trained on tree chopping,
    1,378 dynamics steps: sky share up 0.31 / still 0.34 / down 0.19: docs/model_card_indev3.md.)"""
    from worldsim.model.openings import load_openings

    env = gym.make("worldsim/NeuralMinecraft-v0")
    bank = load_openings(DEFAULT_CHECKPOINT)
    skyward = [i for i in range(len(bank["frames"])) if _sky(bank["frames"][i][-1]) > 0.05][:4]
    assert len(skyward) >= 3
    sky: dict[str, list[float]] = {"up": [], "down": [], "still": []}
    for i in skyward:
        start = {"frames": bank["frames"][i], "actions": [env.unwrapped.model.codec.decode(a) for a in bank["actions"][i]]}
        for name, pitch in (("up", -5.0), ("down", 5.0), ("still", 0.0)):
            obs, _ = env.reset(seed=i, options=start)
            for _ in range(8):
                obs = env.step(act(env.action_space, camera=[pitch, 0.0]))[0]
            sky[name].append(_sky(obs))
    up, down, still = (float(np.mean(sky[n])) for n in ("up", "down", "still"))
    assert down < still - 0.05 and up > down + 0.05, sky


def test_shipped_dreams_bring_the_sky_back_after_looking_down_and_up_again():
    """Look down 60 degrees (the sky leaves the view), then back up 60 degrees: the game shows the start view again.
    With the motion prior repeating the edge into the revealed strip, the dream stayed all ground (sky share 0.03);
    with the strip left unknown (ModelConfig.prior_fill = "mean") the horizon comes back."""
    env = gym.make("worldsim/NeuralMinecraft-v0")
    start, low, back = [], [], []
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        start.append(_sky(obs))
        for _ in range(6):
            obs = env.step(act(env.action_space, camera=[10.0, 0.0]))[0]
        low.append(_sky(obs))
        for _ in range(6):
            obs = env.step(act(env.action_space, camera=[-10.0, 0.0]))[0]
        back.append(_sky(obs))
    assert np.mean(low) < 0.5 * np.mean(start)  # looking down lost most of the sky
    assert np.mean(back) > 0.5 * np.mean(start), (np.mean(start), np.mean(low), np.mean(back))


def test_shipped_dreams_turn_the_scene_the_right_way():
    """Turning right moves the dreamed scene left and turning left moves it right, as in the real game (which
    moves about 0.7 px per degree at 64x64): measured by phase correlation between consecutive dreamed frames."""
    from worldsim.evaluation.motion import frame_shift

    env = gym.make("worldsim/NeuralMinecraft-v0")
    moved = {}
    for name, yaw in (("right", 4.0), ("left", -4.0)):
        dx = []
        for seed in (0, 1, 2, 3):
            obs, _ = env.reset(seed=seed)
            frames = [obs] + [env.step(act(env.action_space, camera=[0.0, yaw]))[0] for _ in range(4)]
            dx += list(frame_shift(np.stack(frames[:-1]), np.stack(frames[1:]))[:, 1])
        moved[name] = float(np.nanmedian(dx))
    # the real game moves about -2.8 and +2.8 px per step; the shipped dream moves -1.1 / +1.7 (-0.9 / +1.4 on the
    # latent prior; the model before the GPU fine-tuning: 5-9 % of the real shift, which this bound would fail)
    assert moved["right"] < -0.5 and moved["left"] > 0.5, moved


def test_pixel_prior_moves_the_picture_where_the_latent_prior_cross_fades():
    """A 2 degree turn moves the game's picture by ~1.4 px, a third of a latent cell (4 px): moving the latents
    cross-fades neighbouring cells, and the decoded prior does not move (it snaps to whole cells: 0 px here, 4 px
    from 3 degrees on); the pixel-space prior moves by the real shift (the calibrated one, or the lens's for a rotation
prior). The shipped model samples with it."""
    import torch

    import worldsim
    from worldsim.evaluation.motion import frame_shift
    from worldsim.model.motion_prior import shift
    from worldsim.model.openings import load_openings

    m = worldsim.load(DEFAULT_CHECKPOINT)
    assert m.prior is not None
    frames = torch.from_numpy(load_openings(DEFAULT_CHECKPOINT)["frames"][:16, -1])
    cam = m.codec.slices["camera"]
    for yaw, pitch in ((2.0, 0.0), (-2.0, 0.0), (0.0, 2.0), (0.0, -2.0)):
        a = torch.zeros(len(frames), m.codec.dim)
        a[:, cam] = torch.tensor([pitch, yaw])
        per_deg = np.array(m.cfg.camera_px_per_deg)
        if m.cfg.prior_geometry == "rotation":  # the lens's own move at the centre: f * tan(1 degree), f from the fov
            f = (m.cfg.frame_size / 2) / np.tan(np.radians(m.cfg.camera_fov / 2))
            per_deg = np.sign(per_deg) * f * np.tan(np.radians(1.0))
        want = np.array([pitch * per_deg[0], yaw * per_deg[1]])
        pixel = frame_shift(frames.numpy(), m.decode(m.prior(frames, a)).numpy())
        dy, dx = m.prior.pixel_shift(a)
        down = m.cfg.ae.downsample
        latent = frame_shift(frames.numpy(), m.decode(shift(m.encode(frames), dy / down, dx / down, "mean")).numpy())
        axis = 1 if yaw else 0
        got_pixel, got_latent = np.nanmedian(pixel[:, axis]), np.nanmedian(latent[:, axis])
        assert abs(got_pixel - want[axis]) < 0.25 * abs(want[axis]), (yaw, pitch, got_pixel, want)
        assert abs(got_latent) < 0.5 * abs(want[axis]), (yaw, pitch, got_latent, want)
    still = torch.zeros(len(frames), m.codec.dim)
    torch.testing.assert_close(m.prior(frames, still), m.encode(frames), atol=1e-4, rtol=0)  # no turn: the frame itself


def test_the_shipped_model_is_the_configs_defaults_and_every_option_works_on_it(tmp_path):
    """What ships is what the configs' defaults build (less what the data sets: action space, events, camera
    calibration); the dream reports its pitch; the benches' and export's own defaults run on it; options of the
    retired design are gone (an error, not a silent no-op)."""
    import pytest

    import worldsim
    from worldsim.bench.throughput import bench_neural
    from worldsim.cli import main
    from worldsim.model.config import ModelConfig

    shipped = json.loads((DEFAULT_CHECKPOINT / "config.json").read_text())["model"]
    mine, ours = ModelConfig.from_dict(shipped).to_dict(), ModelConfig().to_dict()
    data_fields = ("action_space_json", "outcome_events", "camera_px_per_deg")
    assert {k: v for k, v in mine.items() if k not in data_fields} == {k: v for k, v in ours.items() if k not in data_fields}
    env = gym.make("worldsim/NeuralMinecraft-v0")
    _, info = env.reset(seed=0)
    assert -90 <= info["pitch"] <= 90
    assert env.step(act(env.action_space, camera=[3.0, 0.0]))[-1]["pitch"] == pytest.approx(min(90, info["pitch"] + 3), abs=1e-4)
    r = bench_neural(None, batch_sizes=(1,), frames=2, repeats=1)  # its default sampling steps and precisions
    assert set(r["single"]) == {"fp32", "bf16"} and all(v > 0 for p in r["single"].values() for v in p.values())
    assert r["auto_picks"] in ("fp32", "bf16")
    assert main(["export", "--checkpoint", str(DEFAULT_CHECKPOINT), "--out", str(tmp_path / "one"), "--sampling-steps", "1",
                 "--context-noise", "0.3", "--view-memory", "0", "--detail-carry", "0.5", "--still-below", "8",
                 "--still-latent", "0"]) == 0
    assert worldsim.load(tmp_path / "one").cfg.sampler.steps == 1
    assert worldsim.load(tmp_path / "one").cfg.sampler.context_noise == pytest.approx(0.3)
    assert worldsim.load(tmp_path / "one").cfg.sampler.view_memory == 0
    assert worldsim.load(tmp_path / "one").cfg.sampler.detail_carry == pytest.approx(0.5)
    assert (worldsim.load(tmp_path / "one").cfg.sampler.still_below, worldsim.load(tmp_path / "one").cfg.sampler.still_latent) == (8, 0)
    for argv in (["play", "--key-guidance", "2"], ["export", "--checkpoint", str(DEFAULT_CHECKPOINT), "--out",
                                                    str(tmp_path / "x"), "--prior-start", "0.3"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
