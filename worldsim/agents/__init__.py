"""Policies that act in any env with a MineRL-style Dict action space."""

from __future__ import annotations

from pathlib import Path

from gymnasium.spaces import Dict

from worldsim.agents.base import Policy
from worldsim.agents.explore import ExploreAgent
from worldsim.agents.mix import SPAWN_HEAVY, WALK_WEIGHTS, MixAgent
from worldsim.agents.random_agent import RandomAgent


def _mix_trees(action_space: Dict, seed: int | None = None) -> MixAgent:
    return MixAgent(action_space, seed=seed, seek_trees=True)


def _mix_spawn(action_space: Dict, seed: int | None = None) -> MixAgent:
    """`mix-trees` that first lingers at the spawn for four to eight segments (standing, turning, random keys)."""
    return MixAgent(action_space, seed=seed, seek_trees=True, spawn_segments=SPAWN_HEAVY)


def _mix_walk(action_space: Dict, seed: int | None = None) -> MixAgent:
    """`mix-trees` whose segments are half walks begun from a stand (`worldsim.agents.mix`, mode ``walk``): the
    data a dream needs to start walking when a standing player presses a key. At the spawn the player faces the
    hut's door, so a first walk forward is the user's first walk out of it."""
    return MixAgent(action_space, seed=seed, seek_trees=True, weights=WALK_WEIGHTS)


def _explore_trees(action_space: Dict, seed: int | None = None) -> ExploreAgent:
    """The explorer that walks to the nearest log the game reports (`info["nearest_log"]`) and chops it: a
    scripted Treechop reference that reads the world's state, which no pixel policy sees."""
    return ExploreAgent(action_space, seed=seed, seek_trees=True)


#: The agents that ship in the package, by task: `worldsim play --agent treechop`, `agent eval --policy treechop`.
SHIPPED_AGENTS = Path(__file__).resolve().parent.parent / "assets" / "agents"

POLICIES = {"explore": ExploreAgent, "explore-trees": _explore_trees, "random": RandomAgent, "mix": MixAgent,
            "mix-trees": _mix_trees, "mix-spawn": _mix_spawn, "mix-walk": _mix_walk}


def make_policy(name: str, action_space: Dict, seed: int | None = None) -> Policy:
    """Build a policy: a name of POLICIES (explore, explore-trees, random, mix, mix-trees, mix-spawn, mix-walk),
    a shipped agent (`shipped_agents()`: treechop), a folder written by `worldsim agent bc` or `agent train`, or
    'package.module:factory' (called as factory(action_space, seed=seed))."""
    if name in POLICIES:
        return POLICIES[name](action_space, seed=seed)
    from worldsim.agents.ppo import PPOAgent, is_policy_folder

    if name in shipped_agents():
        return PPOAgent(SHIPPED_AGENTS / name, action_space, seed=seed)
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
    raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES) + shipped_agents()}, a policy folder, "
                     "or 'module:factory'")


def shipped_agents() -> list[str]:
    """The names of the agents shipped in the package (policy folders under `worldsim/assets/agents`)."""
    return sorted(p.name for p in SHIPPED_AGENTS.iterdir() if (p / "policy.json").is_file()) if SHIPPED_AGENTS.is_dir() else []


__all__ = ["Policy", "ExploreAgent", "MixAgent", "RandomAgent", "make_policy", "shipped_agents", "POLICIES",
           "SHIPPED_AGENTS"]
