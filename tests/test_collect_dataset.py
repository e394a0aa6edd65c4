"""Recording rollouts: round trip through the dataset (ours and Minari's reader), videos, resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import worldsim.envs  # noqa: F401
from worldsim.data.dataset import Dataset, DatasetError, DatasetWriter, Episode
from worldsim.data_collect.collect import CollectConfig, collect, play_episode
from worldsim.data_collect.stats import action_stats
from worldsim.io.video import read_mp4


def test_collect_round_trip_replays_to_the_same_frames(tmp_path):
    out = tmp_path / "ds"
    summary = collect(CollectConfig(episodes=2, steps=25, workers=2, out=str(out), seed=7, video=True), progress=False)
    assert summary["episodes_written"] == 2 and summary["steps"] == 50
    ds = Dataset(out)
    assert len(ds) == 2 and ds.total_steps == 50
    assert ds.info["env_id"] == "worldsim/MinecraftIndev-v0" and ds.info["game_version"].startswith("Indev 0.31")
    assert ds.info["frame_size"] == [64, 64]
    ep = ds.episode(1)
    assert ep.frames.shape == (26, 64, 64, 3) and ep.seed == 8
    assert ep.truncations[-1] and not ep.truncations[:-1].any()
    assert ep.infos["pose"].shape == (26, 5)
    # replaying the recorded actions in the real game reproduces the recorded frames exactly
    env = gym.make("worldsim/MinecraftIndev-v0")
    obs, _ = env.reset(seed=ep.seed)
    assert np.array_equal(obs, ep.frames[0])
    for t in range(len(ep)):
        obs, *_ = env.step({k: v[t] for k, v in ep.actions.items()})
        assert np.array_equal(obs, ep.frames[t + 1]), f"frame {t + 1} differs"
    env.close()
    video = read_mp4(out / "videos" / "episode_1.mp4")
    assert video.shape == (26, 256, 256, 3)


class _KillsTheGame:
    """Plays no-ops and kills the real game process before its sixth action: a game crash mid-episode."""

    def __init__(self, env):
        self.env, self.t = env, 0

    def reset(self, seed=None):
        self.t = 0

    def act(self, obs, info):
        self.t += 1
        if self.t == 6:
            os.kill(self.env.unwrapped.game_pid, signal.SIGKILL)
        return self.env.action_space.sample() | {"camera": np.zeros(2, np.float32)}


def test_collection_is_deterministic_same_command_same_bytes(tmp_path):
    """The same collect command writes the same dataset, byte for byte (episode files; the dataset's own
    metadata records the time it was written): so a lost dataset is re-collected, not lost."""
    def files(root):  # every episode's files (data/<episode>/...)
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.parent.name.isdigit()}

    for name in ("a", "b"):
        collect(CollectConfig(episodes=2, steps=15, workers=2, out=str(tmp_path / name), seed=11, policy="mix-trees"),
                progress=False)
    a, b = (files(tmp_path / n / "data") for n in ("a", "b"))
    assert len(a) >= 2 and a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), [str(k) for k in a if a[k] != b[k]]


def test_a_game_crash_ends_the_episode_truncated_and_keeps_its_steps(tmp_path):
    env = gym.make("worldsim/MinecraftIndev-v0", prefetch=False)
    ep, crash = play_episode(env, _KillsTheGame(env), index=0, seed=3, steps=20)
    assert "died" in crash and len(ep) == 5 and ep.frames.shape[0] == 6
    assert ep.truncations[-1] and not ep.terminations.any()
    writer = DatasetWriter(tmp_path / "ds", env.observation_space, env.action_space, {"env_id": "crash"})
    writer.write_episode(ep)
    writer.finalize({})
    assert len(Dataset(tmp_path / "ds")) == 1
    ep, crash = play_episode(env, _KillsTheGame(env), index=1, seed=4, steps=4)  # the env carries on, a new game
    assert crash is None and len(ep) == 4
    env.close()


def test_minari_reads_the_dataset(tmp_path, monkeypatch):
    import minari

    out = tmp_path / "worldsim" / "indev-v0"
    collect(CollectConfig(episodes=1, steps=10, out=str(out)), progress=False)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    m = minari.load_dataset("worldsim/indev-v0")
    assert m.total_episodes == 1 and m.total_steps == 10
    ep = next(iter(m.iterate_episodes()))
    ours = Dataset(out).episode(0)
    assert np.array_equal(ep.observations, ours.frames)
    np.testing.assert_array_equal(ep.actions["camera"], ours.actions["camera"])
    np.testing.assert_array_equal(ep.actions["forward"], ours.actions["forward"])


def test_collect_resumes_after_kill_9(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "worldsim.cli", "collect", "--episodes", "6", "--steps", "40",
           "--workers", "2", "--out", "./ds", "--quiet", "--seed", "3"]  # a relative --out, as users type it
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "data" / "1" / "metadata.json").exists():
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the collector and its workers, mid-episode
    proc.wait()
    done_before = sorted(int(p.name) for p in (out / "data").iterdir() if p.name.isdigit())
    assert 0 < len(done_before) < 6
    # every episode on disk is complete and readable, even right after the kill
    meta = json.loads((out / "data" / "metadata.json").read_text())
    assert meta["total_episodes"] <= len(done_before)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    ds = Dataset(out)
    assert len(ds) == 6 and ds.total_steps == 240
    assert [ds.episode(i).seed for i in range(6)] == [3, 4, 5, 6, 7, 8]
    # the resumed episodes are the same as an uninterrupted run's
    ref = tmp_path / "ref"
    collect(CollectConfig(episodes=6, steps=40, out=str(ref), seed=3), progress=False)
    for i in range(6):
        assert np.array_equal(Dataset(ref).episode(i).frames, ds.episode(i).frames)


def test_workers_stop_when_the_collector_alone_is_killed(tmp_path):
    """`kill PID` of the collector (not its process group) leaves its worker an orphan: it finishes the episode it
    is playing and stops, instead of playing the whole dataset on a core the user has given back."""
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "worldsim.cli", "collect", "--episodes", "200", "--steps", "20", "--workers", "1",
           "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "data" / "1" / "metadata.json").exists():
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # the parent only: no clean-up runs in it
        proc.wait()

        def written() -> int:
            return sum(1 for p in (out / "data").iterdir() if p.name.isdigit())

        time.sleep(10)  # the orphan's episode in flight, and its game's shutdown
        settled = written()
        time.sleep(5)  # a worker still playing writes an episode of 20 steps every fraction of a second
        assert written() == settled < 200
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # every process of the collection has ended
            pass


def test_a_dataset_grows_with_a_second_policy_after_its_episodes(tmp_path):
    """`--first`: a second recipe (another policy, another length) appends episodes after those a dataset holds,
    seeded by their index as the first part's are; it refuses to leave a gap."""
    out = tmp_path / "ds"
    collect(CollectConfig(episodes=2, steps=6, out=str(out), seed=5, policy="mix-trees"), progress=False)
    with pytest.raises(ValueError, match="episode 2"):
        collect(CollectConfig(episodes=1, steps=4, out=str(out), seed=5, first=3, policy="mix-spawn"), progress=False)
    summary = collect(CollectConfig(episodes=2, steps=4, out=str(out), seed=5, first=2, policy="mix-spawn"),
                      progress=False)
    ds = Dataset(out)
    assert summary["episodes_written"] == 2 and len(ds) == 4 and ds.total_steps == 2 * 6 + 2 * 4
    assert [ds.episode(i).seed for i in range(4)] == [5, 6, 7, 8]
    meta = json.loads((out / "data" / "metadata.json").read_text())["worldsim"]
    assert meta["policy"] == "mix-trees" and meta["from_episode_2"]["policy"] == "mix-spawn"
    again = collect(CollectConfig(episodes=2, steps=4, out=str(out), seed=5, first=2, policy="mix-spawn"),
                    progress=False)
    assert again["skipped_existing"] == 2 and again["episodes_written"] == 0


def test_writer_refuses_a_different_dataset_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "ds"
    collect(CollectConfig(episodes=1, steps=5, out=str(out)), progress=False)
    with pytest.raises(DatasetError, match="frame_size"):
        collect(CollectConfig(episodes=2, steps=5, out=str(out), size=128), progress=False)
    assert len(Dataset(out)) == 1 and Dataset(out).episode(0).frames.shape[1] == 64


def test_bad_episodes_are_refused_with_a_clear_error(tmp_path):
    space = gym.spaces.Dict({"forward": gym.spaces.Discrete(2)})
    w = DatasetWriter(tmp_path, gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), space, {"env_id": "t", "source": "t"})
    bad = Episode(0, np.zeros((3, 8, 8, 3), np.uint8), {"forward": np.zeros(3, np.int64)}, np.zeros(3), np.zeros(3, bool), np.zeros(3, bool))
    with pytest.raises(DatasetError, match="steps \\+ 1"):
        w.write_episode(bad)
    assert not (tmp_path / "data" / "0").exists()


def test_corrupt_episode_file_is_named(tmp_path):
    out = tmp_path / "ds"
    collect(CollectConfig(episodes=1, steps=5, out=str(out)), progress=False)
    f = next((out / "data" / "0").glob("*.arrow"))
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DatasetError, match="part-0.arrow"):
        Dataset(out).episode(0)


def test_explore_policy_covers_every_action(tmp_path):
    out = tmp_path / "ds"
    collect(CollectConfig(episodes=1, steps=600, out=str(out), seed=1), progress=False)
    stats = action_stats(Dataset(out))
    held = stats["pressed_fraction"]
    for key in ("forward", "jump", "attack", "use"):  # rarer keys: see tests/test_agents.py over 20k steps
        assert held[key] > 0.005, key
    assert stats["camera"]["yaw_moving_fraction"] > 0.5 and stats["camera"]["pitch_moving_fraction"] > 0.3


def test_the_policy_mix_is_recorded_per_step_and_reported(tmp_path):
    from worldsim.agents.mix import MODES

    out = tmp_path / "mix"
    collect(CollectConfig(episodes=1, steps=400, out=str(out), seed=2, policy="mix"), progress=False)
    ep = Dataset(out).episode(0)
    mode = np.asarray(ep.infos["mode"])
    assert len(mode) == len(ep.frames) and mode[0] == -1 and set(mode[1:].tolist()) <= set(range(len(MODES)))
    idle = np.flatnonzero(mode[1:] == MODES.index("idle"))  # the action that led into frame t+1 was idle
    if len(idle):
        assert (np.asarray(ep.actions["camera"])[idle] == 0).all()
    stats = action_stats(Dataset(out))
    assert abs(sum(stats["mode_fraction"].values()) - 1) < 1e-3
    assert stats["camera"]["exactly_still_fraction"] >= stats["mode_fraction"].get("idle", 0) - 1e-3


def test_collect_on_a_local_ray_instance_gives_the_same_episodes(tmp_path):
    cfg = dict(episodes=3, steps=15, seed=21, policy="mix")
    collect(CollectConfig(out=str(tmp_path / "local"), workers=1, **cfg), progress=False)
    summary = collect(CollectConfig(out=str(tmp_path / "ray"), workers=2, ray="local", **cfg), progress=False)
    assert summary["episodes_written"] == 3 and summary["steps"] == 45
    local, remote = Dataset(tmp_path / "local"), Dataset(tmp_path / "ray")
    assert len(remote) == 3 and remote.info["env_id"] == local.info["env_id"]
    for i in range(3):
        a, b = local.episode(i), remote.episode(i)
        assert a.seed == b.seed and np.array_equal(a.frames, b.frames)
        assert all(np.array_equal(a.actions[k], b.actions[k]) for k in a.actions)


def test_a_bare_name_is_a_dataset_in_the_data_home_and_a_path_wins(tmp_path, monkeypatch, data_home):
    """`--out NAME` writes into $WORLDSIM_HOME/datasets/NAME, so a fresh checkout finds it; `--out ./NAME` (any
    path) is used as given; reading by name finds it again."""
    from worldsim.cli import main
    from worldsim.io.home import home, place

    monkeypatch.chdir(tmp_path)
    assert home() == data_home and place("runs_x", "runs") == data_home / "runs" / "runs_x"
    assert main(["collect", "--episodes", "1", "--steps", "5", "--out", "named", "--quiet", "--workers", "1"]) == 0
    assert Dataset(data_home / "datasets" / "named").total_steps == 5 and not (tmp_path / "named").exists()
    assert main(["stats", "named"]) == 0
    assert main(["collect", "--episodes", "1", "--steps", "5", "--out", "./here", "--quiet", "--workers", "1"]) == 0
    assert Dataset(tmp_path / "here").total_steps == 5 and not (data_home / "datasets" / "here").exists()
    (tmp_path / "local").mkdir()
    assert place("local", "datasets") == Path("local") and place("/abs/x", "runs") == Path("/abs/x")
