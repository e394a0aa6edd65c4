"""worldsim: the world model (autoencoder, diffusion transformer, sampler, training, checkpoints, evaluation).

This package imports none of `envs`, `agents` or `data_collect`.
"""

__version__ = "0.1.0"
