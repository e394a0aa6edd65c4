"""Dreaming: the sampler that owns the rollout state of a batch of dreams, and the bank of real openings."""
