"""Gymnasium environments of worldsim. Importing this package registers:

- `worldsim/MinecraftClassic-v0`: the embedded real game, Minecraft rd-161348 (headless, deterministic).
- `worldsim/MinecraftClassic-Dig-v0`: the real game's dig task (envs/tasks.py), 200-step episodes.
- `worldsim/NeuralMinecraft-v0`: the world model as an env (single and `gym.make_vec`).
- `worldsim/MineRL-<id>`: adapters for MineRL 1.0 envs (need the optional `minerl` package).
"""

from envs.registration import register_all

register_all()
