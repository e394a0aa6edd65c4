"""Rollout datasets (Minari format), written one episode at a time and read memory-mapped."""
