"""Dream starts drawn from recorded play: any step of a dataset, with its real context frames and actions.

World-model agents that work (DIAMOND, IRIS, DreamerV3, Dreamer 4) imagine from states of their real data, burned
in on the real frames before them, rather than from a few fixed openings: the agent then meets in its dreams the
places and moments the data holds, each dream starts on the data manifold (where the model is most accurate), and
short imagination horizons suffice. A start is step t of an episode: its frames t-K+1..t, the K-1 recorded actions
between them and the view's pitch at t. With a task, the steps shortly before the task's reward (recomputed from the
recorded counts, `recorded_rewards`) can be made likelier, so dreams often begin where the reward is within reach.
"""

from __future__ import annotations

import os

import numpy as np

from worldsim.data.dataset import Dataset
from worldsim.envs.actions import restrict_action
from worldsim.envs.indev.rewards import recorded_rewards
from worldsim.io.home import place
from worldsim.model.actions import ActionCodec

Start = tuple[np.ndarray, np.ndarray, float]  # frames (K, H, W, 3) uint8, flat actions (K-1, A), pitch (NaN: unknown)


class DataStarts:
    """Draws dream starts from a dataset's steps, optionally weighted toward a task's rewards."""

    def __init__(self, data: str | os.PathLike, codec: ActionCodec, k: int, frame_hw: tuple[int, int],
                 task: str | None = None, event_weight: float = 1.0, lead: int = 100,
                 episodes: list[int] | None = None):
        """data: a dataset (a name in the data home or a folder); k: frames per start (the model's start frames);
        task + event_weight: a step within `lead` steps before the task's reward is drawn `event_weight` times as
        often as another (1: every step alike); episodes: which of the dataset's episodes (default all)."""
        self.ds = Dataset(place(data, "datasets"))
        shape = tuple(self.ds.observation_space.shape)
        if shape != (*frame_hw, 3):
            raise ValueError(f"dataset {self.ds.root} holds {shape} frames; this world model dreams {(*frame_hw, 3)}")
        if event_weight < 1:
            raise ValueError(f"event_weight must be >= 1 (how many times likelier a step before a reward is), got {event_weight}")
        if event_weight > 1 and task is None:
            raise ValueError("event_weight > 1 needs a task: whose reward the starts are weighted toward")
        self.codec, self.k, self.task = codec, k, task
        self.episodes = list(range(len(self.ds))) if episodes is None else list(episodes)
        keys = list(self.ds.info.get("count_keys") or [])
        where, weights = [], []
        self.events = 0
        for e in self.episodes:
            n = self.ds.episode_length(e)
            if n < k:  # too short to hold K frames and one step after them
                continue
            w = np.ones(n + 1 - k, np.float64)  # last start frame t = k-1 .. n-1: at least one recorded step after
            if event_weight > 1:
                if not keys:
                    raise ValueError(f"dataset {self.ds.root} recorded no counts: its steps cannot be weighted toward "
                                     f"{task!r}'s reward")
                paid = np.flatnonzero(recorded_rewards(self.ds.episode(e).infos["counts"], keys, task) > 0)
                self.events += len(paid)
                for h in paid:  # step h paid: starts whose last frame lies in [h - lead, h] see it within `lead` steps
                    lo, hi = max(k - 1, h - lead), min(n - 1, h)
                    if lo <= hi:
                        w[lo - (k - 1):hi - (k - 1) + 1] = event_weight
            where.append(np.stack([np.full(len(w), e), np.arange(k - 1, n)], 1))
            weights.append(w)
        if not where:
            raise ValueError(f"dataset {self.ds.root}: no episode of at least {k} steps to start a dream from")
        self.where = np.concatenate(where)
        self.cum = np.cumsum(np.concatenate(weights))
        self._open: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.where)

    def _episode(self, e: int):
        if e not in self._open:
            if len(self._open) > 64:  # memory-mapped, but keep the open files bounded
                self._open.clear()
            self._open[e] = self.ds.episode(e)
        return self._open[e]

    def draw(self, rng: np.random.Generator) -> Start:
        """One start: the frames up to a drawn step, the recorded actions between them, the pitch at its last frame."""
        i = int(np.searchsorted(self.cum, rng.random() * self.cum[-1], side="right"))
        e, t = (int(x) for x in self.where[min(i, len(self.where) - 1)])
        return self.at(e, t)

    def at(self, e: int, t: int) -> Start:
        """The start whose last frame is frame t of episode e."""
        ep = self._episode(e)
        if not self.k - 1 <= t < len(ep.frames):
            raise IndexError(f"episode {e}: a start needs frames {t - self.k + 1}..{t}, it has 0..{len(ep.frames) - 1}")
        frames = np.array(ep.frames[t - self.k + 1:t + 1])
        acts = [restrict_action({key: v[i] for key, v in ep.actions.items()}, self.codec.space)
                for i in range(t - self.k + 1, t)]
        flat = np.stack([self.codec.encode(self.codec.validate(a)) for a in acts]) if acts \
            else np.zeros((0, self.codec.dim), np.float32)
        return frames, flat.astype(np.float32), float(ep.view_pitch()[t])
