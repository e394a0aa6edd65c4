"""Policies that act in any env with a MineRL-style Dict action space."""

from __future__ import annotations

from gymnasium.spaces import Dict

from agents.base import Policy
from agents.explore import ExploreAgent
from agents.random_agent import RandomAgent

POLICIES = {"explore": ExploreAgent, "random": RandomAgent}


def make_policy(name: str, action_space: Dict, seed: int | None = None) -> Policy:
    """Build a named policy ('explore' or 'random')."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    return POLICIES[name](action_space, seed=seed)


__all__ = ["Policy", "ExploreAgent", "RandomAgent", "make_policy", "POLICIES"]
