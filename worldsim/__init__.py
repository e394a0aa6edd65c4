"""worldsim: the world model (autoencoder, diffusion transformer, sampler, training, checkpoints, evaluation).

This package imports none of `envs`, `agents` or `data_collect`.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(path, device: str = "cpu"):
    """Rebuild a trained WorldModel from a checkpoint folder (or a run folder: its latest checkpoint)."""
    from worldsim.checkpoint import load as _load

    return _load(path, device=device)


__all__ = ["load", "__version__"]
