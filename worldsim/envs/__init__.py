"""Gymnasium environments of worldsim. Importing this package registers:

- `worldsim/MinecraftIndev-v0`: the embedded real game, Minecraft Indev 0.31 (headless, deterministic, one game
  process per level).
- `worldsim/MinecraftIndev-Dig-v0`, `-Treechop-v0`, `-Obtain-v0`: the real game's tasks (envs/tasks.py).
- `worldsim/NeuralMinecraft-v0`: the world model as an env (single and `gym.make_vec`).
- `worldsim/MineRL-<id>`: adapters for MineRL 1.0 envs (need the optional `minerl` package).
"""

from worldsim.envs.registration import register_all

register_all()
