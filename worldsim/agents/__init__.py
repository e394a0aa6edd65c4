"""Policies that act in any env with a MineRL-style Dict action space."""

from __future__ import annotations

from gymnasium.spaces import Dict

from worldsim.agents.base import Policy
from worldsim.agents.explore import ExploreAgent
from worldsim.agents.mix import MixAgent
from worldsim.agents.random_agent import RandomAgent


def _mix_trees(action_space: Dict, seed: int | None = None) -> MixAgent:
    return MixAgent(action_space, seed=seed, seek_trees=True)


def _explore_trees(action_space: Dict, seed: int | None = None) -> ExploreAgent:
    """The explorer that walks to the nearest log the game reports (`info["nearest_log"]`) and chops it: a
    scripted Treechop reference that reads the world's state, which no pixel policy sees."""
    return ExploreAgent(action_space, seed=seed, seek_trees=True)


POLICIES = {"explore": ExploreAgent, "explore-trees": _explore_trees, "random": RandomAgent, "mix": MixAgent,
            "mix-trees": _mix_trees}


def make_policy(name: str, action_space: Dict, seed: int | None = None) -> Policy:
    """Build a policy: a name of POLICIES (explore, explore-trees, random, mix, mix-trees), a folder written by
    `worldsim agent train`, or 'package.module:factory' (called as factory(action_space, seed=seed))."""
    if name in POLICIES:
        return POLICIES[name](action_space, seed=seed)
    from worldsim.agents.ppo import PPOAgent, is_policy_folder

    if is_policy_folder(name):
        return PPOAgent(name, action_space, seed=seed)
    if ":" in name:
        import importlib

        module, attr = name.split(":", 1)
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load policy {name!r}: {e}") from e
        return factory(action_space, seed=seed)
    raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}, a policy folder, or 'module:factory'")


__all__ = ["Policy", "ExploreAgent", "MixAgent", "RandomAgent", "make_policy", "POLICIES"]
