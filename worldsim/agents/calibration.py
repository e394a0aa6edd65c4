"""Does the dream pay? The reward model's calibration table, measured before any RL in the dream.

A policy improved in dreams learns whatever the dream's reward (the world model's outcome heads, `DreamReward`)
pays for. Two measures, on a held-out dataset the model never trained on:

- **On real steps**: the heads read each recorded transition (the real frames before and after, the real action);
  how often they pay the task's reward against how often the game really paid it, and how many real rewards they
  catch within a few steps (recall) and how many of their payments are real (precision).
- **In dreams started just before real rewards**: a dream starts `lead` steps before each real reward, on the real
  context frames, and replays the recorded actions; how often the dream pays within the window where the game
  did. The same from starts whose window holds no real reward: how often the dream pays for nothing.

RL in the dream only makes sense where both rates are usefully high and the false payments rare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldsim.data.dataset import Dataset
from worldsim.envs.actions import restrict_action
from worldsim.envs.data_starts import DataStarts
from worldsim.envs.indev.rewards import recorded_rewards
from worldsim.envs.tasks import DreamReward
from worldsim.sampling.sampler import Sampler


def _flat(model, ep) -> np.ndarray:
    """An episode's recorded actions as the model's flat vectors (T, A)."""
    codec = model.codec
    n = len(ep)
    return np.stack([codec.encode(codec.validate(restrict_action({k: v[i] for k, v in ep.actions.items()}, codec.space)))
                     for i in range(n)]).astype(np.float32)


@torch.no_grad()
def heads_on_real(model, ds: Dataset, task: str, tolerance: int = 3, batch: int = 256) -> dict[str, Any]:
    """The heads' payments on every recorded transition of `ds` against the game's (see the module doc)."""
    keys = list(ds.info.get("count_keys") or [])
    real_n = pred_n = caught = true_pay = steps = 0
    for e in range(len(ds)):
        ep = ds.episode(e)
        real = recorded_rewards(ep.infos["counts"], keys, task) > 0
        flat = torch.from_numpy(_flat(model, ep)).to(model.device)
        events = []
        for i in range(0, len(ep), batch):
            f = torch.from_numpy(np.array(ep.frames[i:i + batch + 1])).to(model.device)
            z = model.encode(f)
            feats = model.codec.features(flat[i:i + len(z) - 1])
            ev, _ = model.outcome(z[:-1], z[1:], feats)
            events.append(ev.cpu().numpy())
        reward = DreamReward(model.cfg.outcome_events, task)
        paid = np.array([reward.step(ev) > 0 for ev in np.concatenate(events)])
        near = lambda at, where: any(abs(int(at) - int(w)) <= tolerance for w in where)  # noqa: E731
        r_idx, p_idx = np.flatnonzero(real), np.flatnonzero(paid)
        caught += sum(near(h, p_idx) for h in r_idx)
        true_pay += sum(near(p, r_idx) for p in p_idx)
        real_n, pred_n, steps = real_n + len(r_idx), pred_n + len(p_idx), steps + len(ep)
    return {"steps": steps, "real_rewards": real_n, "predicted_rewards": pred_n,
            "real_per_1000": round(1000 * real_n / max(steps, 1), 2), "predicted_per_1000": round(1000 * pred_n / max(steps, 1), 2),
            "recall": round(caught / real_n, 3) if real_n else None,
            "precision": round(true_pay / pred_n, 3) if pred_n else None, "tolerance_steps": tolerance}


@torch.no_grad()
def dreams_before_rewards(model, data: str, task: str, lead: int = 20, after: int = 5, controls: int = 32,
                          seed: int = 0, steps: int | None = None) -> dict[str, Any]:
    """Dreams started `lead` steps before each real reward of `data`, replaying the recorded actions for
    lead + after steps: the share that pays in that window. And as many dreams (at least `controls`) from starts
    whose window holds no real reward: the share that pays anyway."""
    k = model.start_frames
    starts = DataStarts(data, model.codec, k, model.cfg.frame_hw)
    ds, keys = starts.ds, list(starts.ds.info.get("count_keys") or [])
    rng = np.random.default_rng(seed)
    before, empty = [], []
    flats: dict[int, np.ndarray] = {}  # each episode's recorded actions, encoded once

    def flat_of(e: int) -> np.ndarray:
        if e not in flats:
            flats[e] = _flat(model, ds.episode(e))
        return flats[e]

    for e in range(len(ds)):
        ep = ds.episode(e)
        real = recorded_rewards(ep.infos["counts"], keys, task) > 0
        n = len(ep)
        for h in np.flatnonzero(real):
            t = h - lead  # the start's last frame; steps t .. t + lead + after are replayed
            if t >= k - 1 and t + lead + after <= n:
                before.append((e, t))
        quiet = [t for t in range(k - 1, n - lead - after) if not real[t:t + lead + after].any()]
        empty += [(e, int(t)) for t in rng.choice(quiet, min(len(quiet), 4), replace=False)] if quiet else []
    empty = [empty[i] for i in rng.permutation(len(empty))[:max(controls, len(before))]]

    def paid_share(where: list[tuple[int, int]]) -> tuple[float | None, list[int]]:
        hits = []
        for j in range(0, len(where), 16):
            chunk = where[j:j + 16]
            got = [starts.at(e, t) for e, t in chunk]
            sampler = Sampler(model, np.stack([g[0] for g in got]), np.stack([g[1] for g in got]), steps=steps,
                              seeds=[seed + j + i for i in range(len(chunk))])
            acts = np.stack([flat_of(e)[t:t + lead + after] for e, t in chunk])
            rewards = [DreamReward(model.cfg.outcome_events, task) for _ in chunk]
            paid = np.zeros(len(chunk), bool)
            for s in range(lead + after):
                out = sampler.step(acts[:, s])
                paid |= np.array([r.step(ev) > 0 for r, ev in zip(rewards, out.events)])
            hits += paid.astype(int).tolist()
        return (round(float(np.mean(hits)), 3) if hits else None), hits

    pay_before, _ = paid_share(before)
    pay_empty, _ = paid_share(empty)
    return {"lead": lead, "after": after, "starts_before_rewards": len(before), "paid_before_rewards": pay_before,
            "starts_without_rewards": len(empty), "paid_without_rewards": pay_empty}


def calibration_table(checkpoint: str | None, data: str, task: str = "treechop", leads: tuple[int, ...] = (10, 40),
                      seed: int = 0) -> dict[str, Any]:
    """Both measures for one world model and task (`worldsim agent calibrate`)."""
    import worldsim
    from worldsim.io.home import place

    model = worldsim.load(checkpoint, "auto", "auto")
    ds = Dataset(place(data, "datasets"))
    return {"checkpoint": str(model.checkpoint_dir), "data": str(ds.root), "task": task,
            "heads_trained": bool(model.heads_trained), "real_steps": heads_on_real(model, ds, task),
            "dreams": [dreams_before_rewards(model, str(ds.root), task, lead=lead, seed=seed) for lead in leads]}
