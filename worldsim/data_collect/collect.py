"""`worldsim collect`: record rollouts of a policy in any Gymnasium env with parallel worker processes.

Episode i is played with seed `seed + i` (env and policy), so a dataset is reproducible and resumable: a rerun
skips the episodes already on disk and plays only the missing ones. Workers are separate processes (each game
owns an OpenGL context and the GIL would serialise threads); each writes its finished episodes itself,
atomically, and reports to the parent, which shows progress and keeps the metadata up to date.

With `ray` set (an address, or "local" for a Ray instance on this machine) the workers are Ray actors anywhere
on a cluster, each holding one env; they send finished episodes back and this process writes them, so only it
needs the dataset folder. Same seeds, same policy, same episodes as a local run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.data.dataset import DatasetWriter, Episode


@dataclass
class CollectConfig:
    env_id: str = "worldsim/MinecraftIndev-v0"
    policy: str = "explore"
    episodes: int = 10
    steps: int = 1000
    out: str = "datasets/indev"
    workers: int = 1
    size: int = 64
    seed: int = 0
    first: int = 0  # index of the first episode: a second recipe grows a dataset after the episodes it holds
    video: bool = False
    env_kwargs: dict | None = None
    ray: str | None = None  # a Ray cluster address ("auto", "ray://host:10001") or "local"; None: local processes


def _make_env(cfg: CollectConfig):
    import gymnasium as gym

    import worldsim.envs  # noqa: F401  (registers worldsim ids)

    kwargs = dict(cfg.env_kwargs or {})
    if cfg.env_id.startswith(("worldsim/MinecraftIndev", "worldsim/MineRL")):
        kwargs.setdefault("size", cfg.size)
    if cfg.env_id.startswith("worldsim/MinecraftIndev"):
        kwargs.setdefault("prefetch", False)  # every episode is reset with its own seed: a prefetched level is wasted
    return gym.make(cfg.env_id, **kwargs)


def _env_info(env, cfg: CollectConfig) -> dict[str, Any]:
    from worldsim.envs.indev.game import GAME_VERSION

    info: dict[str, Any] = {"env_id": cfg.env_id, "source": "dream" if "Neural" in cfg.env_id else "collect"}
    if "Indev" in cfg.env_id:
        info["game_version"] = GAME_VERSION
        from worldsim.envs.indev.rewards import COUNT_KEYS

        info["count_keys"] = list(COUNT_KEYS)  # the columns of each episode's infos["counts"]
    elif "Neural" in cfg.env_id:
        info["checkpoint"] = str(getattr(env.unwrapped, "checkpoint_path", ""))
    return info


POSE_KEYS = ("pos", "pitch", "yaw")


def play_episode(env, policy, index: int, seed: int, steps: int) -> tuple[Episode, str | None]:
    """Play one episode of at most `steps` steps; `seed` seeds both the env and the policy.

    If the real game dies mid-episode, the episode ends there, truncated, and keeps what it recorded; the error
    is returned beside it (the env starts a fresh game at the next reset). Why: one crash of the game in hours of
    collection should cost one episode's tail, not the run; replaying the same seed meets the same crash."""
    from worldsim.envs.indev.process import GameProcessError

    crash = None
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    frames = [obs]
    actions: dict[str, list] = {k: [] for k in env.action_space.spaces}
    rewards, terms, truncs = [], [], []
    poses = [_pose(info)]
    counts = [_counts(info)]
    modes = getattr(policy, "MODES", None)  # a policy mix names what each action came from (worldsim.agents.mix)
    mode = [-1]  # per frame: the mode of the action that led into it (none for the first)
    for t in range(steps):
        a = policy.act(obs, info)
        if modes:
            mode.append(modes.index(policy.mode))
        try:
            obs, r, term, trunc, info = env.step(a)
        except GameProcessError as e:
            if t == 0:
                raise
            if modes:
                mode.pop()
            truncs[-1] = True
            crash = str(e).splitlines()[0]
            break
        for k in actions:
            actions[k].append(np.asarray(a[k]))
        frames.append(obs)
        rewards.append(float(r))
        terms.append(bool(term))
        truncs.append(bool(trunc) or (t == steps - 1 and not term))
        poses.append(_pose(info))
        counts.append(_counts(info))
        if term or trunc:
            break
    infos = {"pose": np.stack(poses)} if all(p is not None for p in poses) else {}
    if all(c is not None for c in counts):
        infos["counts"] = np.asarray(counts, np.float32)
    if modes:
        infos["mode"] = np.asarray(mode, np.int64)
    episode = Episode(index=index, frames=np.stack(frames), actions={k: np.stack(v) for k, v in actions.items()},
                      rewards=np.asarray(rewards, np.float32), terminations=np.asarray(terms),
                      truncations=np.asarray(truncs), seed=seed, infos=infos)
    return episode, crash


def _counts(info: dict) -> list[float] | None:
    """The task counts of the real game's info (worldsim.envs.indev.rewards.COUNT_KEYS), from which any task's reward is
    recomputed later; None for envs without them."""
    if "inventory" not in info or "blocks_broken" not in info:
        return None
    from worldsim.envs.indev.rewards import counts_of

    return counts_of(info)


def _pose(info: dict) -> np.ndarray | None:
    """[x, y, z, pitch, yaw] when the env reports them (the real game does), for evaluation and tests."""
    if not all(k in info for k in POSE_KEYS):
        return None
    return np.array([*np.asarray(info["pos"], np.float64), info["pitch"], info["yaw"]], np.float64)


def _save(writer: DatasetWriter, cfg: CollectConfig, ep: Episode) -> None:
    """Write a finished episode (atomically) and, with --video, its mp4."""
    from worldsim.io.video import write_mp4

    writer.write_episode(ep)
    if cfg.video:
        write_mp4(Path(cfg.out) / "videos" / f"episode_{ep.index}.mp4", ep.frames, fps=20, scale=4)


def _worker(cfg: CollectConfig, todo, results) -> None:
    """Play and write the episodes handed out on `todo` until its end (None), or until the collecting process is
    gone: a parent that is killed (SIGTERM, SIGKILL) runs no clean-up, and its workers would otherwise go on
    playing the whole dataset on cores the user has given back."""
    from worldsim.agents import make_policy

    parent = os.getppid()
    env = _make_env(cfg)
    writer = DatasetWriter(cfg.out, env.observation_space, env.action_space, _env_info(env, cfg))
    policy = make_policy(cfg.policy, env.action_space, seed=cfg.seed)
    try:
        while True:
            index = todo.get()
            if index is None or os.getppid() != parent:
                break
            ep, crash = play_episode(env, policy, index, cfg.seed + index, cfg.steps)
            _save(writer, cfg, ep)
            results.put(("done", index, len(ep), crash))
    except BaseException as e:  # report, so the parent stops with a clear message instead of hanging
        results.put(("error", repr(e), 0, None))
        raise
    finally:
        env.close()


def collect(cfg: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Collect the missing episodes of `cfg.out`; returns a summary with steps/s."""
    from tqdm import tqdm

    if cfg.episodes < 1 or cfg.steps < 1 or cfg.workers < 1 or cfg.first < 0:
        raise ValueError("--episodes, --steps and --workers must all be at least 1, --first at least 0")
    from worldsim.agents import make_policy

    # create (or check) the dataset in the parent, so a mismatch fails before any worker starts
    env = _make_env(cfg)
    writer = DatasetWriter(cfg.out, env.observation_space, env.action_space, _env_info(env, cfg))
    make_policy(cfg.policy, env.action_space, seed=cfg.seed)  # fail early on a bad --policy
    env.close()
    if cfg.first and not writer.has_episode(cfg.first - 1):
        raise ValueError(f"--first {cfg.first}: {cfg.out} does not hold episode {cfg.first - 1} yet; a dataset grows "
                         "without gaps (collect the episodes before it first)")
    todo_idx = [i for i in range(cfg.first, cfg.first + cfg.episodes) if not writer.has_episode(i)]
    summary: dict[str, Any] = {"skipped_existing": cfg.episodes - len(todo_idx), "episodes_written": 0, "steps": 0}
    recipe = _recipe(cfg)
    if not todo_idx:
        writer.finalize(recipe)
        return summary
    bar = tqdm(total=len(todo_idx) * cfg.steps, unit="step", disable=not progress, desc="collect")
    t0 = time.perf_counter()
    try:
        if cfg.ray:
            done = _episodes_on_ray(cfg, todo_idx, writer)
        else:
            done = _episodes_in_processes(cfg, todo_idx)
        for index, n, crash in done:
            if crash:
                summary.setdefault("game_crashes", {})[index] = crash
                bar.write(f"episode {index}: the game died after {n} steps; kept them, truncated ({crash})")
            summary["episodes_written"] += 1
            summary["steps"] += n
            bar.update(n)
            bar.set_postfix(steps_per_s=f"{summary['steps'] / (time.perf_counter() - t0):.0f}")
            writer.finalize(recipe)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    summary.update(seconds=round(elapsed, 2), steps_per_s=round(summary["steps"] / elapsed, 1))
    writer.finalize(recipe)
    return summary


def _recipe(cfg: CollectConfig) -> dict[str, Any]:
    """What the dataset's metadata records of how its episodes were made: the policy and seed of episodes from 0,
    and of each later part, where it starts (`first`), so a grown dataset still says how to collect it again."""
    if not cfg.first:
        return {"policy": cfg.policy, "seed": cfg.seed}
    return {f"from_episode_{cfg.first}": {"policy": cfg.policy, "seed": cfg.seed, "steps": cfg.steps}}


def _episodes_in_processes(cfg: CollectConfig, todo_idx: list[int]):
    """Yield (index, steps, crash) as local worker processes finish (and write) the episodes."""
    ctx = mp.get_context("spawn")
    todo, results = ctx.Queue(), ctx.Queue()
    for i in todo_idx:
        todo.put(i)
    workers = [ctx.Process(target=_worker, args=(cfg, todo, results), daemon=True)
               for _ in range(min(cfg.workers, len(todo_idx)))]
    for _ in workers:
        todo.put(None)
    for w in workers:
        w.start()
    try:
        for _ in todo_idx:
            kind, index, n, crash = _next_result(results, workers)
            if kind == "error":
                raise RuntimeError(f"a collection worker failed: {index}")
            yield index, n, crash
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.terminate()


class _RayWorker:
    """One env and one policy on a Ray node; plays the episodes it is handed and returns them."""

    def __init__(self, cfg: CollectConfig):
        from worldsim.agents import make_policy

        self.cfg, self.env = cfg, _make_env(cfg)
        self.policy = make_policy(cfg.policy, self.env.action_space, seed=cfg.seed)

    def play(self, index: int) -> tuple[Episode, str | None]:
        return play_episode(self.env, self.policy, index, self.cfg.seed + index, self.cfg.steps)


def _episodes_on_ray(cfg: CollectConfig, todo_idx: list[int], writer: DatasetWriter):
    """Yield (index, steps, crash) as Ray actors finish episodes; each is written here, atomically, on arrival."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'worldsim[ray]'") from None

    started = not ray.is_initialized()
    if started:
        local = cfg.ray == "local"
        if local:  # Ray nices its workers to 15: the games would get only what every other process leaves over
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address=None if local else cfg.ray, num_cpus=cfg.workers if local else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actor = ray.remote(num_cpus=1)(_RayWorker)
        actors = [actor.remote(cfg) for _ in range(min(cfg.workers, len(todo_idx)))]
        queue, running = list(todo_idx), {}
        for a in actors:
            running[a.play.remote(queue.pop(0))] = a
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            a = running.pop(ref)
            if queue:
                running[a.play.remote(queue.pop(0))] = a
            ep, crash = ray.get(ref)
            _save(writer, cfg, ep)
            yield ep.index, len(ep), crash
    finally:
        if started:
            ray.shutdown()


def _next_result(results, workers):
    import queue

    while True:
        try:
            return results.get(timeout=5)
        except queue.Empty:
            if not any(w.is_alive() for w in workers):
                raise RuntimeError("all collection workers exited without finishing their episodes") from None
