"""worldsim: the world model (autoencoder, diffusion transformer, sampler, training, checkpoints, evaluation).

This package imports none of the others (`envs`, `agents`, `data_collect`, `bench`, `cli`): tests/test_layout.py.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(path=None, device: str = "cpu", precision: str = "fp32", key_guidance: float | None = None):
    """Rebuild a trained WorldModel from a checkpoint folder, a run folder (its latest checkpoint) or None (the
    shipped model); see `worldsim.checkpoint.load`."""
    from worldsim.checkpoint import load as _load

    return _load(path, device=device, precision=precision, key_guidance=key_guidance)


__all__ = ["load", "__version__"]
