"""Tasks: what an agent is asked to do, the same in the real game and in the dream.

A task fixes the reward and the episode length. The real game computes each task's reward from its own state
(`envs/indev/rewards.py`); the neural env predicts it with the outcome heads it learned from real rollouts, so a
policy sees the same task in both worlds and only the world differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym


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


def make_task_env(env_id: str, task: str | None = None, **kwargs) -> gym.Env:
    """`gym.make(env_id)` with the task's episode length (the task's own id already has it)."""
    if task is None:
        return gym.make(env_id, **kwargs)
    t = get_task(task)
    if env_id == t.real_env_id:
        return gym.make(env_id, **kwargs)
    return gym.make(env_id, max_episode_steps=t.episode_steps, **kwargs)
