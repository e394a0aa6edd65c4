"""The embedded real game: determinism, camera conventions, movement, block edits, isolation."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tests.conftest import act


def _shift(a: np.ndarray, b: np.ndarray, axis: int, max_shift: int = 12) -> int:
    """The pixel shift s minimising |b - a moved by s| along `axis` (positive: content moved right/down)."""
    a, b = a.astype(np.float32).mean(-1), b.astype(np.float32).mean(-1)
    best, best_err = 0, np.inf
    n = a.shape[axis]
    for s in range(-max_shift, max_shift + 1):
        lo, hi = max(0, s), n + min(0, s)
        sa = np.take(a, range(lo - s, hi - s), axis=axis)
        sb = np.take(b, range(lo, hi), axis=axis)
        err = np.mean((sa - sb) ** 2)
        if err < best_err:
            best, best_err = s, err
    return best


def test_check_env_and_spaces(classic):
    env = classic()
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (64, 64, 3)
    assert "sneak" not in env.action_space.spaces and "sprint" not in env.action_space.spaces
    assert [k for k in env.action_space if k.startswith("hotbar")] == [f"hotbar.{i}" for i in range(1, 6)]
    assert env.metadata["render_fps"] == 20


def test_reset_lands_on_ground_and_128_renders_natively(classic):
    env = classic(size=128)
    obs, info = env.reset(seed=5)
    assert obs.shape == (128, 128, 3) and obs.dtype == np.uint8
    assert info["on_ground"] and info["tick"] == 0
    assert obs.std() > 10  # a real scene, not a blank frame


def _rollout(env, seed, n=40):
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    rng = np.random.default_rng(seed)
    for t in range(n):
        a = act(env.action_space, forward=int(t % 7 < 5), jump=int(t % 11 == 0), attack=int(t % 13 == 0),
                camera=rng.uniform(-4, 4, 2))
        frames.append(env.step(a)[0])
    return np.stack(frames)


def test_same_seed_same_actions_identical_frames_in_one_process(classic):
    a = _rollout(classic(), seed=11)
    b = _rollout(classic(), seed=11)
    c = _rollout(classic(), seed=12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


_CHILD = """
import hashlib, sys, numpy as np, gymnasium as gym, envs
sys.path.insert(0, {root!r})
from tests.test_classic_env import _rollout
env = gym.make("worldsim/MinecraftClassic-v0")
print(hashlib.sha256(_rollout(env, seed=11).tobytes()).hexdigest())
"""


def test_same_seed_same_actions_identical_frames_across_processes(classic, tmp_path):
    here = hashlib.sha256(_rollout(classic(), seed=11).tobytes()).hexdigest()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(root=root)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == here


def test_camera_yaw_positive_turns_right_so_the_scene_moves_left(classic):
    env = classic(zombies=0)
    obs, info = env.reset(seed=3)
    obs1, _, _, _, info1 = env.step(act(env.action_space, camera=[0.0, 5.0]))
    assert info1["yaw"] == pytest.approx(info["yaw"] + 5.0)
    # 5 degrees at a 70 degree field of view over 64 px is about 4 px near the centre
    assert _shift(obs, obs1, axis=1) in (-5, -4, -3)
    obs2, *_ = env.step(act(env.action_space, camera=[0.0, -5.0]))
    assert _shift(obs1, obs2, axis=1) in (3, 4, 5)


def test_camera_pitch_positive_looks_down_so_the_scene_moves_up(classic):
    env = classic(zombies=0)
    obs, info = env.reset(seed=3)
    sky = lambda f: np.mean((f[..., 2] > 200) & (f[..., 0] < 160))  # noqa: E731  (the light-blue sky)
    obs1, _, _, _, info1 = env.step(act(env.action_space, camera=[5.0, 0.0]))
    assert info1["pitch"] == pytest.approx(info["pitch"] + 5.0)
    assert _shift(obs, obs1, axis=0) in (-5, -4, -3)
    for _ in range(6):
        obs_down, _, _, _, info_down = env.step(act(env.action_space, camera=[10.0, 0.0]))
    assert sky(obs_down) < sky(obs)
    assert info_down["pitch"] == pytest.approx(min(90.0, info["pitch"] + 65.0))
    for _ in range(3):
        obs_up, _, _, _, info_up = env.step(act(env.action_space, camera=[-60.0, 0.0]))
    assert info_up["pitch"] == -90.0  # clamped like the game
    assert sky(obs_up) > sky(obs)


def test_forward_moves_along_the_view_and_changes_the_view(classic):
    env = classic(zombies=0)
    obs, info = env.reset(seed=4)
    for _ in range(20):
        obs1, _, _, _, info1 = env.step(act(env.action_space, forward=1))
    yaw = np.radians(info["yaw"])
    moved = info1["pos"] - info["pos"]
    facing = np.array([np.sin(yaw), 0.0, -np.cos(yaw)])
    assert moved @ facing > 1.0  # walked at least a block forward
    assert np.abs(obs1.astype(int) - obs.astype(int)).mean() > 2
    for _ in range(20):
        _, _, _, _, info2 = env.step(act(env.action_space, back=1))
    assert (info2["pos"] - info1["pos"]) @ facing < -1.0


def _look_at_ground(env, seed):
    obs, info = env.reset(seed=seed)
    for _ in range(4):
        obs, _, _, _, info = env.step(act(env.action_space, camera=[12.0, 0.0]))  # 48 degrees down
    for _ in range(10):  # settle: particles and block ticks quiet
        obs, _, _, _, info = env.step(act(env.action_space))
    return obs, info


def test_attack_breaks_the_block_under_the_crosshair_and_it_shows(classic):
    env = classic(zombies=0)
    before, info = _look_at_ground(env, seed=6)
    after, reward, _, _, info1 = env.step(act(env.action_space, attack=1))
    assert reward == 1.0 and info1["blocks_broken"] == 1
    centre = (slice(24, 40), slice(24, 40))
    assert np.abs(after[centre].astype(int) - before[centre].astype(int)).mean() > 10
    # still holding attack: no second break until the repeat delay has passed
    _, reward2, _, _, _ = env.step(act(env.action_space, attack=1))
    assert reward2 == 0.0


def test_use_places_the_selected_block_and_it_shows(classic):
    env = classic(zombies=0)
    before, info = _look_at_ground(env, seed=6)
    sel, _, _, _, info_sel = env.step(act(env.action_space, hotbar_4=1))  # planks
    assert info_sel["selected_block"] == 5
    after, _, _, _, info1 = env.step(act(env.action_space, use=1))
    assert info1["blocks_placed"] == 1
    centre = (slice(20, 44), slice(20, 44))
    assert np.abs(after[centre].astype(int) - sel[centre].astype(int)).mean() > 10


def test_invalid_action_raises(classic):
    env = classic()
    env.reset(seed=0)
    a = act(env.action_space)
    a["sneak"] = 1
    with pytest.raises(ValueError, match="sneak"):
        env.step(a)
    a = act(env.action_space)
    a["camera"] = np.array([np.nan, 0.0], np.float32)
    with pytest.raises(ValueError, match="camera"):
        env.step(a)


def test_nothing_is_written_to_the_working_directory(classic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "level.dat").write_bytes(b"not a level")  # must not even be read
    env = classic()
    env.reset(seed=1)
    for _ in range(5):
        env.step(act(env.action_space, attack=1, use=1))
    env.close()
    assert sorted(os.listdir(tmp_path)) == ["level.dat"]
    assert (tmp_path / "level.dat").read_bytes() == b"not a level"


def test_global_random_state_is_untouched(classic):
    import random

    random.seed(99)
    expected = random.random()
    random.seed(99)
    env = classic()
    env.reset(seed=1)
    env.step(act(env.action_space, forward=1))
    assert random.random() == expected


def test_frustum_culling_does_not_change_what_the_frames_look_like(classic):
    fast = _rollout(classic(), seed=21, n=30)
    stock = _rollout(classic(frustum_culling=False), seed=21, n=30)
    assert np.array_equal(fast, stock)
