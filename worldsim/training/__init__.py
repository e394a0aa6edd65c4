"""Training: the config and presets, the latent cache, the objective, the phases and the trainer that runs them."""
