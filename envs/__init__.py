"""Gymnasium environments of worldsim. Importing this package registers:

- `worldsim/MinecraftClassic-v0`: the embedded real game, Minecraft rd-161348 (headless, deterministic).
- `worldsim/MineRL-<id>`: adapters for MineRL 1.0 envs (need the optional `minerl` package).
"""

from envs.registration import register_all

register_all()
