"""Task rewards of the Indev env, computed from the game's `info` so datasets can recompute them for any task.

- no task / `dig`: +1 per block the player breaks.
- `treechop`: +1 per wood item collected (as MineRL's Treechop; in this version a log drops planks, so logs and
  planks both count).
- `obtain`: the staged task of MineRL's Obtain envs, each stage rewarded once: planks 1, workbench 2, wooden
  pickaxe 4.
"""

from __future__ import annotations

WOOD_ITEMS = ("wood", "planks")
OBTAIN_STAGES = (("planks", 1.0), ("workbench", 2.0), ("pickaxeWood", 4.0))
#: What a recorded episode keeps of each step's info (`infos["counts"]`, one column each), so every task's reward
#: can be recomputed and a world model's outcome heads can learn when each of them rises.
COUNT_KEYS = ("blocks_broken", "wood", "planks", "workbench", "pickaxeWood")


def counts_of(info: dict) -> list[float]:
    """The COUNT_KEYS of one info: the blocks broken so far, then inventory counts."""
    inv = info.get("inventory", {})
    return [float(info.get("blocks_broken", 0))] + [float(inv.get(k, 0)) for k in COUNT_KEYS[1:]]


def info_of(counts) -> dict:
    """The inverse of `counts_of`: an info the rewards below read (a dream's, from predicted events)."""
    return {"blocks_broken": counts[0], "inventory": {k: counts[i] for i, k in enumerate(COUNT_KEYS) if i}}


class Reward:
    """Turns consecutive infos into a reward; `reset` takes the episode's first info."""

    def reset(self, info: dict) -> None:
        self._last = info

    def step(self, info: dict) -> float:
        r = self.between(self._last, info)
        self._last = info
        return r

    def between(self, before: dict, after: dict) -> float:
        raise NotImplementedError


class BlocksBroken(Reward):
    def between(self, before, after):
        return float(after["blocks_broken"] - before["blocks_broken"])


class WoodCollected(Reward):
    def between(self, before, after):
        count = lambda info: sum(info["inventory"].get(k, 0) for k in WOOD_ITEMS)  # noqa: E731
        return float(max(0, count(after) - count(before)))


class Staged(Reward):
    def reset(self, info):
        super().reset(info)
        self._done = {name for name, _ in OBTAIN_STAGES if info["inventory"].get(name, 0) > 0}

    def between(self, before, after):
        r = 0.0
        for name, value in OBTAIN_STAGES:
            if name not in self._done and after["inventory"].get(name, 0) > 0:
                self._done.add(name)
                r += value
        return r


REWARDS = {None: BlocksBroken, "dig": BlocksBroken, "treechop": WoodCollected, "obtain": Staged}


def make_reward(task: str | None) -> Reward:
    if task not in REWARDS:
        raise ValueError(f"unknown Indev task {task!r}; choose one of {sorted(k for k in REWARDS if k)}")
    return REWARDS[task]()


def recorded_rewards(counts, count_keys, task: str | None):
    """A task's reward of every step of a recorded episode, from its `infos["counts"]` (T + 1, K) under the
    dataset's `count_keys` -> (T,): step i's reward (what the real game would have paid on it). Lets any dataset
    serve any task: behaviour cloning weights the steps before a reward, dreams start just before one."""
    import numpy as np

    counts = np.asarray(counts, np.float64)
    keys = list(count_keys)
    if counts.ndim != 2 or counts.shape[1] != len(keys):
        raise ValueError(f"counts must be (T + 1, {len(keys)}) under count_keys {keys}, got {counts.shape}")
    full = np.zeros((len(counts), len(COUNT_KEYS)))
    for j, k in enumerate(COUNT_KEYS):
        if k in keys:
            full[:, j] = counts[:, keys.index(k)]
    reward = make_reward(task)
    reward.reset(info_of(full[0]))
    return np.array([reward.step(info_of(row)) for row in full[1:]], np.float32)
