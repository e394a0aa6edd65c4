"""Registers worldsim's env ids with Gymnasium (called on `import envs`)."""

from __future__ import annotations

import gymnasium as gym

CLASSIC_ID = "worldsim/MinecraftClassic-v0"
NEURAL_ID = "worldsim/NeuralMinecraft-v0"
CLASSIC_DIG_ID = "worldsim/MinecraftClassic-Dig-v0"


def register_all() -> None:
    if CLASSIC_ID not in gym.registry:
        gym.register(CLASSIC_ID, entry_point="envs.classic.env:MinecraftClassicEnv")
    if CLASSIC_DIG_ID not in gym.registry:  # the dig task (envs/tasks.py): blocks broken in a fixed episode
        from envs.tasks import TASKS

        gym.register(CLASSIC_DIG_ID, entry_point="envs.classic.env:MinecraftClassicEnv",
                     max_episode_steps=TASKS["dig"].episode_steps)
    if NEURAL_ID not in gym.registry:
        gym.register(NEURAL_ID, entry_point="envs.neural:NeuralMinecraftEnv",
                     vector_entry_point="envs.neural:NeuralMinecraftVectorEnv")
    from envs.minerl_adapter import MINERL_ENV_IDS

    for minerl_id in MINERL_ENV_IDS:
        env_id = f"worldsim/MineRL-{minerl_id}"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="envs.minerl_adapter:MineRLEnv", kwargs={"minerl_id": minerl_id})
