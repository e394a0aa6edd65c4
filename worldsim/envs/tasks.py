"""Tasks: what an agent is asked to do, the same in the real game and in the dream.

A task fixes the reward and the episode length. The real game computes each task's reward from its own state
(`envs/indev/rewards.py`); the neural env predicts it with the outcome heads it learned from real rollouts, so a
policy sees the same task in both worlds and only the world differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from worldsim.envs.indev.rewards import COUNT_KEYS, info_of, make_reward


@dataclass(frozen=True)
class Task:
    name: str
    real_env_id: str  # the registered real-game id of this task
    episode_steps: int  # fixed episode length (truncation); death or falling out of the world terminates earlier
    description: str


TASKS: dict[str, Task] = {
    "dig": Task("dig", "worldsim/MinecraftIndev-Dig-v0", 200,
                "+1 for every block broken within 200 steps (10 s of game time); needs to look at blocks within "
                "reach and attack them"),
    "treechop": Task("treechop", "worldsim/MinecraftIndev-Treechop-v0", 2000,
                     "+1 for every wood item collected within 2,000 steps (as MineRL's Treechop; a log drops "
                     "planks in this version): find a tree, break its logs, walk over what they drop"),
    "obtain": Task("obtain", "worldsim/MinecraftIndev-Obtain-v0", 6000,
                   "the staged task of MineRL's Obtain envs, each stage paid once: planks 1, a workbench 2, a "
                   "wooden pickaxe 4 (crafted in the inventory and at the workbench)"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def is_dream(env_id: str) -> bool:
    """Whether `env_id` is the neural env (which takes the task as an argument and predicts its reward)."""
    return str(gym.spec(env_id).entry_point).startswith("worldsim.envs.neural")


def make_task_env(env_id: str, task: str | None = None, episode_steps: int | None = None, **kwargs) -> gym.Env:
    """`gym.make(env_id)` with the task's episode length (the task's own id already has it; `episode_steps`
    shortens another env's, such as a dream's: imagination horizons as short as the task needs) and, in the
    dream, the task's reward."""
    if task is None:
        return gym.make(env_id, max_episode_steps=episode_steps, **kwargs) if episode_steps else gym.make(env_id, **kwargs)
    t = get_task(task)
    if env_id == t.real_env_id:
        if episode_steps is not None:
            raise ValueError(f"episode_steps: {env_id} is the task's own env, whose episodes are {t.episode_steps} steps")
        return gym.make(env_id, **kwargs)
    if is_dream(env_id):
        kwargs = {**kwargs, "task": task}
    return gym.make(env_id, max_episode_steps=episode_steps or t.episode_steps, **kwargs)


class DreamReward:
    """A task's reward in a dream: the outcome heads predict which counts rose on a step (`outcome_events`); the
    dream keeps the counts and pays what the real game's reward code (`envs/indev/rewards.py`) pays for them."""

    def __init__(self, events: tuple[str, ...], task: str | None):
        if task is not None:
            get_task(task)
        self.task = task
        if tuple(events) == ("reward",):  # heads trained on a dataset's reward alone (no counts recorded)
            if task not in (None, "dig"):
                raise ValueError(f"this world model's outcome heads learned only its dataset's reward: task {task!r} "
                                 "needs a model trained on episodes that record the task counts (`worldsim collect` "
                                 "on the Indev env records them)")
            self._columns = None
        else:
            unknown = [e for e in events if e not in COUNT_KEYS]
            if unknown:
                raise ValueError(f"the world model predicts events {unknown} that no task knows")
            self._columns = [COUNT_KEYS.index(e) for e in events]
            self._reward = make_reward(task)
        self.reset()

    def reset(self) -> None:
        if self._columns is None:
            return
        self.counts = np.zeros(len(COUNT_KEYS))
        self._reward.reset(info_of(self.counts))

    def step(self, events: np.ndarray) -> float:
        """events: this step's predicted events (E,) in {0, 1} -> the task's reward."""
        if self._columns is None:
            return float(events[0])
        self.counts[self._columns] += np.asarray(events) > 0
        return float(self._reward.step(info_of(self.counts)))
