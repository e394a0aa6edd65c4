"""The motion measure of `worldsim eval`: image shifts between frames, and pixels per degree of camera turn."""

import numpy as np
import pytest

from worldsim.evaluation.motion import camera_response, camera_slopes, frame_shift


def _texture(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random((size, size, 3)) * 255
    for axis in (0, 1):  # a little smoothing so sub-pixel peaks are well defined
        img = (img + np.roll(img, 1, axis)) / 2
    return img


def test_frame_shift_recovers_known_shifts_with_their_sign():
    img = _texture()
    a = np.stack([img[16:80, 16:80]] * 3)
    b = np.stack([img[13:77, 18:82], img[16:80, 11:75], img[16:80, 16:80]])  # content: up 3 & left 2, right 5, still
    got = frame_shift(a, b)
    assert got == pytest.approx(np.array([[3.0, -2.0], [0.0, 5.0], [0.0, 0.0]]), abs=0.3)


def test_frame_shift_says_nan_for_flat_frames_and_rejects_bad_shapes():
    flat = np.full((1, 32, 32, 3), 90, np.uint8)
    assert np.isnan(frame_shift(flat, flat)).all()
    with pytest.raises(ValueError, match="frame_shift"):
        frame_shift(flat, flat[:, :16])


def test_camera_slopes_and_ratio():
    rng = np.random.default_rng(1)
    camera = rng.uniform(-6, 6, size=(200, 2))  # [pitch, yaw]
    real = np.column_stack([-0.75 * camera[:, 0], -0.65 * camera[:, 1]]) + rng.normal(0, 0.1, (200, 2))
    half = real * 0.5
    still = np.zeros_like(real)
    r = camera_response({"real": real, "dream": half, "action_blind": still}, camera)
    assert r["real"]["yaw_px_per_deg"] == pytest.approx(-0.65, abs=0.05)
    assert r["real"]["pitch_px_per_deg"] == pytest.approx(-0.75, abs=0.05)
    assert r["dream_over_real"]["yaw"] == pytest.approx(0.5, abs=0.05)
    assert r["action_blind_over_real"] == {"yaw": 0.0, "pitch": 0.0}
    assert camera_slopes(real, np.zeros_like(camera))["yaw_px_per_deg"] is None  # no turn to measure against


def test_whole_new_views_and_steps_the_view_did_not_turn_do_not_drag_the_slope():
    """Random play turns up to 180 degrees a step (the next frame is a new view, its "shift" noise near zero), and
    with a GUI open or at the pitch clamp the action turns nothing: neither may read as the model ignoring turns."""
    rng = np.random.default_rng(2)
    small = rng.uniform(-8, 8, size=(150, 2))
    large = rng.uniform(-180, 180, size=(300, 2))
    unturned = rng.uniform(-8, 8, size=(200, 2))
    camera = np.concatenate([small, large, unturned])
    shifts = np.concatenate([np.column_stack([-0.7 * small[:, 0], -0.7 * small[:, 1]]),
                             rng.normal(0, 1.0, (300, 2)), np.zeros((200, 2))]) + rng.normal(0, 0.05, (650, 2))
    valid = np.r_[np.ones(450, bool), np.zeros(200, bool)]
    s = camera_slopes(shifts, camera, valid=valid)
    assert s["yaw_px_per_deg"] == pytest.approx(-0.7, abs=0.05) and s["pitch_px_per_deg"] == pytest.approx(-0.7, abs=0.05)
    assert camera_slopes(shifts, camera, max_turn=180.0)["yaw_px_per_deg"] > -0.35  # what counting them all read


def test_the_real_game_moves_left_when_turning_right_and_up_when_looking_down():
    import gymnasium as gym

    import worldsim.envs  # noqa: F401  (registers the ids)
    from worldsim.model.actions import ActionCodec

    env = gym.make("worldsim/MinecraftIndev-v0", prefetch=False)
    obs, _ = env.reset(seed=3)
    noop = ActionCodec(env.action_space).noop()
    frames, cams = [obs], []
    for cam in [(0.0, 3.0)] * 4 + [(3.0, 0.0)] * 4:
        act = dict(noop)
        act["camera"] = np.array(cam, np.float32)
        obs, *_ = env.step(act)
        frames.append(obs)
        cams.append(cam)
    env.close()
    frames = np.stack(frames)
    s = camera_slopes(frame_shift(frames[:-1], frames[1:]), np.array(cams), min_turn=1.0)
    assert -1.2 < s["yaw_px_per_deg"] < -0.3  # turning right (+yaw) moves the scene left
    assert -1.2 < s["pitch_px_per_deg"] < -0.3  # looking down (+pitch) moves the scene up


def test_sharpness_counts_pixel_to_pixel_contrast_and_drops_under_blur():
    from worldsim.evaluation.evaluate import sharpness

    rng = np.random.default_rng(0)
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)
    frames = np.stack([np.zeros((8, 8), np.uint8), checker])[None, :, :, :, None].repeat(3, axis=-1)  # (1, 2, 8, 8, 3)
    assert np.allclose(sharpness(frames), [[0.0, 510.0]])  # flat: none; a checkerboard: full contrast on both axes
    img = rng.integers(0, 256, (1, 1, 32, 32, 3)).astype(np.uint8)
    blur = ((img[..., :-1, :, :].astype(np.float32) + img[..., 1:, :, :]) / 2).astype(np.uint8)
    assert sharpness(blur)[0, 0] < 0.8 * sharpness(img)[0, 0]


def test_identical_frames_score_the_psnr_cap_not_infinity():
    """Held-out data with idling holds identical consecutive frames: copy-last must score a finite mean."""
    from worldsim.evaluation.evaluate import MAX_PSNR, frame_metrics

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    b = a.copy()
    b[1] ^= 1  # almost the same: a high but uncapped score
    psnr, ssim = frame_metrics(a, b)
    assert psnr[0] == MAX_PSNR and psnr[2] == MAX_PSNR and 40 < psnr[1] < MAX_PSNR
    assert np.isfinite(psnr).all() and ssim[0] > 0.99
