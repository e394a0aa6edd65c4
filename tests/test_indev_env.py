"""The embedded real game, Minecraft Indev 0.31: determinism, camera, movement, items, the GUI, death, isolation."""

import hashlib
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tests.conftest import act, noop
from worldsim.envs.indev.process import GameProcessError


def _shift(a: np.ndarray, b: np.ndarray, axis: int, max_shift: int = 12) -> int:
    """The pixel shift s minimising |b - a moved by s| along `axis` (positive: content moved right/down)."""
    a, b = a[:48].astype(np.float32).mean(-1), b[:48].astype(np.float32).mean(-1)  # above the HUD
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


def _rollout(env, seed, n=40):
    obs, _ = env.reset(seed=seed)
    frames = [obs]
    rng = np.random.default_rng(seed)
    for t in range(n):
        a = act(env.action_space, forward=int(t % 7 < 5), jump=int(t % 11 == 0), attack=int(t % 13 == 0),
                camera=rng.uniform(-4, 4, 2))
        frames.append(env.step(a)[0])
    return np.stack(frames)


def test_check_env_spaces_and_128_renders_natively(indev):
    env = indev(prefetch=False)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (64, 64, 3)
    keys = set(env.action_space.spaces)
    assert {"inventory", "use", "attack", "camera", *(f"hotbar.{i}" for i in range(1, 10))} <= keys
    assert not keys & {"sneak", "sprint", "drop", "ESC"}
    big = indev(size=128, prefetch=False)
    obs, info = big.reset(seed=5)
    assert obs.shape == (128, 128, 3) and obs.dtype == np.uint8 and obs.std() > 10
    assert info["health"] == 20 and info["tick"] == 0 and info["gui"] is None


def test_same_seed_same_actions_identical_frames_in_one_process(indev):
    env = indev()  # the prefetched next level must not change what reset(seed) gives
    a = _rollout(env, seed=11)
    b = _rollout(env, seed=11)
    c = _rollout(indev(prefetch=False), seed=12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


_OTHER_PROCESS = """
import hashlib, sys
import gymnasium as gym
import worldsim.envs
from tests.test_indev_env import _rollout
env = gym.make("worldsim/MinecraftIndev-v0", prefetch=False)
print(hashlib.sha256(_rollout(env, seed=11).tobytes()).hexdigest())
env.close()
"""


def test_same_seed_same_actions_identical_frames_across_processes(indev):
    here = hashlib.sha256(_rollout(indev(prefetch=False), seed=11).tobytes()).hexdigest()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS], capture_output=True, text=True, cwd=root,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == here


@pytest.fixture(scope="module")
def world():
    """One level for the tests that act in it; each test puts the player where it needs him."""
    import gymnasium as gym

    import worldsim.envs  # noqa: F401

    env = gym.make("worldsim/MinecraftIndev-v0", prefetch=False)
    obs, info = env.reset(seed=3)
    env.unwrapped.spawn = info
    yield env
    env.close()


def _open_spot(env):
    """Back to the spawn point (inside the game's spawn hut) facing its door, nothing held, no GUI."""
    u = env.unwrapped
    if u._info["gui"] is not None:
        env.step(act(env.action_space, inventory=1))
    x, y, z = u.spawn["pos"]
    u.teleport(x, y, z, pitch=0.0, yaw=0.0)
    return env.step(noop(env.action_space))


def test_camera_signs_and_magnitude_from_the_frames(world):
    _open_spot(world)
    world.unwrapped.teleport(*world.unwrapped.spawn["pos"], pitch=0.0, yaw=180.0)  # facing the hut's back wall
    space = world.action_space
    a = world.step(act(space, camera=[0, -20]))[0]  # a view with structure in it
    b = world.step(act(space, camera=[0, 5]))[0]
    s = _shift(a, b, axis=1)
    assert -7 <= s <= -3  # turning right moves the scene left, ≈ 0.9 px per degree at 64 px (70° field of view)
    c = world.step(act(space, camera=[5, 0]))[0]
    s = _shift(b, c, axis=0)
    assert -7 <= s <= -3  # looking down moves the scene up
    info = world.step(act(space, camera=[-200 + 180, 0]))[4]
    assert info["pitch"] == pytest.approx(-15.0, abs=1e-3)
    info = world.step(act(space, camera=[-180, 0]))[4]
    assert info["pitch"] == -90.0  # clamped


def test_walking_moves_along_the_view_and_changes_it(world):
    _, _, _, _, start = _open_spot(world)  # yaw 0 faces -z, out through the hut's door
    first = world.step(noop(world.action_space))[0]
    for _ in range(30):
        obs, _, _, _, info = world.step(act(world.action_space, forward=1))
    moved = info["pos"] - start["pos"]
    assert moved[2] < -2.0 and abs(moved[0]) < 1.0  # ≈ 4 blocks/s along -z
    assert np.abs(obs.astype(int) - first.astype(int)).mean() > 10


def test_breaking_a_log_yields_wood_then_placing_puts_a_block(world):
    _, _, _, _, info = _open_spot(world)
    x, y, z = (int(np.floor(v)) for v in info["pos"])
    world.unwrapped.set_block(x, y, z - 2, "wood")  # a log at eye height, two blocks ahead
    before = info["inventory"].get("planks", 0)
    for t in range(200):  # noqa: B007  (t is read after the loop)
        obs, reward, _, _, info = world.step(act(world.action_space, attack=1))
        if world.unwrapped.block_at(x, y, z - 2) == "air":
            break
    assert 60 <= t <= 100  # a log by hand takes ≈ 4 s
    assert reward == 1.0 and info["blocks_broken"] == 1
    for _ in range(20):  # walk over what it dropped
        obs, _, _, _, info = world.step(act(world.action_space, forward=1))
    assert info["inventory"].get("planks", 0) > before
    slot = next(i for i, s in enumerate(info["hotbar"]) if s and s[0] == "planks")
    _open_spot(world)
    n = world.step(act(world.action_space, **{f"hotbar_{slot + 1}": 1}, camera=[50, 0]))[4]["inventory"]["planks"]
    info = world.step(act(world.action_space, use=1))[4]
    info = world.step(noop(world.action_space))[4]
    assert info["inventory"].get("planks", 0) == n - 1
    assert info["target"] is not None and info["target"][3] == "planks"  # the placed block, under the crosshair


def _cursor_to(env, info, gx, gy):
    cx, cy = info["cursor"]
    return env.step(act(env.action_space, camera=[gy - cy, gx - cx]))


def _click(env, button="attack"):
    env.step(act(env.action_space, **{button: 1}))
    return env.step(noop(env.action_space))


# GUI pixels of the inventory screen's slots (the 176 × 166 screen centred in the 192 × 192 GUI)
HOTBAR = [(24 + 18 * i, 163) for i in range(9)]
CRAFT_GRID = [(104, 47), (122, 47), (104, 65), (122, 65)]
CRAFT_RESULT = (160, 57)


def test_inventory_opens_the_cursor_moves_an_item_and_crafts_a_workbench(world):
    _open_spot(world)
    u = world.unwrapped
    info = u.give("planks", 4)
    slot = next(i for i, s in enumerate(info["hotbar"]) if s and s[0] == "planks")
    closed = world.step(noop(world.action_space))[0]
    obs, _, _, _, info = world.step(act(world.action_space, inventory=1))
    assert info["gui"] == "GuiInventory"
    assert np.abs(obs.astype(int) - closed.astype(int)).mean() > 20  # the screen shows
    held = info["hotbar"][slot][1]
    _cursor_to(world, info, *HOTBAR[slot])
    info = _click(world)[4]
    assert info["cursor_item"] == ["planks", held] and info["hotbar"][slot] is None
    for cell in CRAFT_GRID:  # one plank into each cell of the 2 × 2 grid (right click puts one)
        _cursor_to(world, info, *cell)
        info = _click(world, "use")[4]
    assert info["cursor_item"] == (["planks", held - 4] if held > 4 else None)
    if info["cursor_item"]:
        _cursor_to(world, info, *HOTBAR[slot])
        info = _click(world)[4]
    _cursor_to(world, info, *CRAFT_RESULT)
    info = _click(world)[4]
    assert info["cursor_item"] == ["workbench", 1]
    empty = next(i for i, s in enumerate(info["hotbar"]) if s is None)
    _cursor_to(world, info, *HOTBAR[empty])
    info = _click(world)[4]
    assert info["hotbar"][empty] == ["workbench", 1]
    info = world.step(act(world.action_space, inventory=1))[4]
    assert info["gui"] is None and info["inventory"]["workbench"] == 1


def test_a_fall_kills_and_death_ends_the_episode(indev):
    env = indev(prefetch=False)
    _, info = env.reset(seed=4)
    x, y, z = info["pos"]
    env.unwrapped.teleport(x, y + 45, z)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(noop(env.action_space))
        if terminated:
            break
    assert terminated and info["dead"] and info["health"] <= 0
    for _ in range(3):  # stepping on shows the game-over screen (upstream's screen killed the game here)
        obs, _, terminated, _, info = env.step(noop(env.action_space))
    assert terminated and info["gui"] is not None and obs.std() > 0


def test_invalid_actions_get_one_clear_error(world):
    a = act(world.action_space)
    a["sneak"] = 1
    with pytest.raises(ValueError, match="sneak"):
        world.step(a)
    a = act(world.action_space)
    a["camera"] = np.array([np.nan, 0.0], np.float32)
    with pytest.raises(ValueError, match="camera"):
        world.step(a)
    with pytest.raises(ValueError, match="diamond_block"):
        world.unwrapped.give("diamond_block")


def test_the_eye_inside_a_solid_block_renders_instead_of_killing_the_game(world):
    _, _, _, _, info = _open_spot(world)
    x, y, z = (int(np.floor(v)) for v in info["pos"])
    world.unwrapped.set_block(x, y, z, "stone")  # the block the eye is in (the game dies here upstream)
    for _ in range(3):
        obs, _, _, _, info = world.step(noop(world.action_space))
    assert obs.std() > 0 and not info["dead"]
    world.unwrapped.set_block(x, y, z, "air")


def test_a_killed_game_process_gives_a_clear_error(indev):
    env = indev(prefetch=False)
    env.reset(seed=0)
    os.kill(env.unwrapped.game_pid, signal.SIGKILL)
    with pytest.raises(GameProcessError, match="died"):
        env.step(noop(env.action_space))
    env.reset(seed=0)  # the env itself is still usable
    assert env.step(noop(env.action_space))[0].shape == (64, 64, 3)


def test_nothing_is_written_to_the_working_directory_and_global_random_is_untouched(indev, tmp_path, monkeypatch):
    import random

    monkeypatch.chdir(tmp_path)
    random.seed(99)
    expected = random.random()
    random.seed(99)
    env = indev(prefetch=False)
    env.reset(seed=1)
    for _ in range(5):
        env.step(act(env.action_space, attack=1, use=1, forward=1))
    env.close()
    assert os.listdir(tmp_path) == []
    assert random.random() == expected
