"""worldsim: a neural Minecraft. An action-conditioned latent diffusion world model behind a Gymnasium interface.

    worldsim.model         the world model: tokenizer, space-time dynamics transformer, heads, checkpoints
    worldsim.sampling      the sampler: the rollout state of a batch of dreams
    worldsim.training      the trainer: phases, objective, latent cache, configs and presets
    worldsim.data          rollout datasets (Minari)
    worldsim.evaluation    dreams scored against held-out real episodes, and the report
    worldsim.envs          Gymnasium envs: the real game (Minecraft Indev 0.31), the dream, tasks, play
    worldsim.agents        policies: scripted, cloned, RL
    worldsim.data_collect  recording rollouts and importing recordings
    worldsim.bench         benchmarks (they measure, never assert)
    worldsim.cli           the `worldsim` command

Each imports only those above it (tests/test_layout.py). Importing `worldsim` registers the Gymnasium ids
(`worldsim/NeuralMinecraft-v0`, `worldsim/MinecraftIndev-v0`, ...), so `gym.make("worldsim:worldsim/...")` works.
"""

from __future__ import annotations

__version__ = "0.2.0"


def load(path=None, device: str = "cpu", precision: str = "fp32", compile: bool = False):
    """Rebuild a trained WorldModel from a checkpoint folder, a run folder (its latest checkpoint) or None (the
    shipped model); see `worldsim.model.checkpoint.load`."""
    from worldsim.model.checkpoint import load as _load

    return _load(path, device=device, precision=precision, compile=compile)


def _register() -> None:
    import os

    if os.environ.get("WORLDSIM_GAME_PROCESS"):  # the Indev game's own process (NumPy 1 on its path) needs no ids
        return
    from worldsim.envs.registration import register_all

    register_all()


_register()

__all__ = ["load", "__version__"]
