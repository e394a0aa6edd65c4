"""Registers worldsim's env ids with Gymnasium (called on `import envs`)."""

from __future__ import annotations

import gymnasium as gym

INDEV_ID = "worldsim/MinecraftIndev-v0"
NEURAL_ID = "worldsim/NeuralMinecraft-v0"


def register_all() -> None:
    from worldsim.envs.tasks import TASKS

    if INDEV_ID not in gym.registry:
        gym.register(INDEV_ID, entry_point="worldsim.envs.indev.env:MinecraftIndevEnv")
    for task in TASKS.values():  # one id per task: the task's reward and episode length
        if task.real_env_id not in gym.registry:
            gym.register(task.real_env_id, entry_point="worldsim.envs.indev.env:MinecraftIndevEnv",
                         max_episode_steps=task.episode_steps, kwargs={"task": task.name})
    if NEURAL_ID not in gym.registry:
        gym.register(NEURAL_ID, entry_point="worldsim.envs.neural:NeuralMinecraftEnv",
                     vector_entry_point="worldsim.envs.neural:NeuralMinecraftVectorEnv")
    from worldsim.envs.minerl_adapter import MINERL_ENV_IDS

    for minerl_id in MINERL_ENV_IDS:
        env_id = f"worldsim/MineRL-{minerl_id}"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="worldsim.envs.minerl_adapter:MineRLEnv", kwargs={"minerl_id": minerl_id})
