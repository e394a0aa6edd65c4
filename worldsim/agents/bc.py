"""Behaviour cloning: a pixel policy trained on a dataset's recorded frames and actions.

The first step of the world-model agents that work (Dreamer 4 fine-tunes a policy on the recorded data before any
imagination training): copy what the recorded players did. The network and the action encoding are PPO's
(`worldsim.agents.ppo`: the small CNN, MultiDiscrete keys and camera bins), and the result is saved as a PPO
policy folder, so `agent eval`, `play` and RL load it as they load PPO's.

What is cloned: the frame before each step and the action taken on it, the camera binned to the nearest bin per
axis. The tree-chopping data mixes exploring with idling, random keys and sweeps (`worldsim.agents.mix`); only
the explorer's steps (mode 0) are cloned, and for a task the steps in the `lead` steps before one of its events
(the task's reward recomputed from the recorded counts: for treechop a log's planks picked up) weigh `event_weight` times more, so the walk to a tree and the chopping are what
the policy learns most. Resumable: every `checkpoint_every` steps the weights, Adam's state, the step and the RNG
go to `OUT/checkpoint.safetensors`, atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from worldsim.agents.discrete import DiscreteActionSpec
from worldsim.agents.ppo import _policy_kwargs, _unaliased, save_policy
from worldsim.data.dataset import Dataset
from worldsim.envs.indev.rewards import recorded_rewards
from worldsim.io.atomic import temp_sibling

CHECKPOINT = "checkpoint.safetensors"


def discretise(spec: DiscreteActionSpec, actions: dict[str, np.ndarray]) -> np.ndarray:
    """Recorded actions (per key, (T, ...)) -> the policy's MultiDiscrete choices (T, len(keys) + 2): each key
    pressed or not, each camera axis at its nearest bin."""
    n = len(actions["camera"])
    out = np.zeros((n, len(spec.keys) + 2), np.int64)
    for j, key in enumerate(spec.keys):
        out[:, j] = np.asarray(actions[key]).reshape(n, -1).any(axis=1)
    bins = np.asarray(spec.camera_bins, np.float32)
    cam = np.asarray(actions["camera"], np.float32).reshape(n, 2)
    out[:, len(spec.keys):] = np.abs(cam[:, :, None] - bins[None, None]).argmin(-1)
    return out


def cloning_steps(ds: Dataset, spec: DiscreteActionSpec, task: str, lead: int = 100, event_weight: float = 10.0
                  ) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """The (episode, step) pairs to clone, their MultiDiscrete targets and their sampling weights."""
    counts_keys = list(ds.info.get("count_keys") or [])
    where, targets, weights = [], [], []
    for e in range(len(ds)):
        ep = ds.episode(e)
        t = len(ep)
        a = discretise(spec, {k: np.asarray(v) for k, v in ep.actions.items()})
        mode = np.asarray(ep.infos["mode"])[1:] if "mode" in ep.infos else np.zeros(t, np.int64)  # the step's own
        w = np.ones(t, np.float32)
        if counts_keys and "counts" in ep.infos:
            paid = recorded_rewards(ep.infos["counts"], counts_keys, task)
            for h in np.flatnonzero(paid > 0):  # step h earned the task's reward
                w[max(0, h - lead):h + 1] = event_weight
        keep = np.flatnonzero(mode == 0)
        where += [(e, int(i)) for i in keep]
        targets.append(a[keep])
        weights.append(w[keep])
    if not where:
        raise ValueError(f"{ds.root}: no explorer steps to clone (infos['mode'] == 0)")
    w = np.concatenate(weights)
    return where, np.concatenate(targets), w / w.sum()


def train_bc(data: str, out: str | Path, task: str = "treechop", steps: int = 3000, batch: int = 128,
             learning_rate: float = 3e-4, seed: int = 0, spec: DiscreteActionSpec | None = None, features_dim: int = 256,
             net_arch: tuple[int, ...] = (64,), resume: bool = False, checkpoint_every: int = 500,
             progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Clone the dataset's explorer into a PPO-format policy folder `out`; returns the run's figures."""
    from safetensors.torch import load_file, save_file
    from stable_baselines3.common.policies import ActorCriticCnnPolicy
    from tqdm import tqdm

    from worldsim.model.checkpoint import optimizer_from_tensors, optimizer_to_tensors

    out = Path(out)
    spec = spec or DiscreteActionSpec()
    ds = Dataset(data)
    spec.check(ds.action_space)
    h, w = ds.observation_space.shape[:2]
    obs_space = gym.spaces.Box(0, 255, (3, h, w), np.uint8)
    torch.manual_seed(seed)
    policy = ActorCriticCnnPolicy(obs_space, spec.space, lambda _: learning_rate,
                                  **_policy_kwargs(features_dim, list(net_arch)))
    opt = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    where, targets, weights = cloning_steps(ds, spec, task)
    rng = np.random.default_rng(seed)
    run = {"data": str(Path(data).resolve()), "task": task, "steps": steps, "batch": batch, "lr": learning_rate,
           "seed": seed, "action_spec": spec.to_json(), "clone_steps": len(where)}
    step, losses = 0, []
    if (out / CHECKPOINT).exists():
        if not resume:
            raise ValueError(f"{out} holds an unfinished run: pass --resume to carry it on (or another --out)")
        state = load_file(str(out / CHECKPOINT))
        meta = json.loads((out / "checkpoint.json").read_text())
        if meta["run"] != run:
            raise ValueError(f"{out / CHECKPOINT} was written with other settings: {meta['run']}")
        saved = {k[7:]: v for k, v in state.items() if k.startswith("policy.")}
        if set(saved) != set(_unaliased(policy)):
            raise ValueError(f"{out / CHECKPOINT}: its weights do not match this policy network")
        policy.load_state_dict(saved, strict=False)  # the aliases of the shared CNN fill in with it
        optimizer_from_tensors(opt, state, meta["opt"])
        step, losses = meta["step"], meta["losses"]
        rng.bit_generator.state = meta["rng"]
    frames = {}

    def frame(e: int, i: int) -> np.ndarray:
        if e not in frames:
            frames[e] = ds.episode(e).frames
        return frames[e][i]

    def save_checkpoint() -> None:
        from worldsim.io.atomic import write_json_atomic

        out.mkdir(parents=True, exist_ok=True)
        opt_t, opt_j = optimizer_to_tensors(opt)
        tmp = temp_sibling(out / CHECKPOINT)
        save_file({**{f"policy.{k}": v.contiguous() for k, v in _unaliased(policy).items()}, **opt_t}, str(tmp))
        write_json_atomic(out / "checkpoint.json", {"run": run, "opt": opt_j, "step": step, "losses": losses,
                                                    "rng": rng.bit_generator.state})
        tmp.replace(out / CHECKPOINT)

    bar = tqdm(total=steps, initial=step, desc="bc", disable=not progress)
    done_now = 0
    policy.train()
    while step < steps:
        pick = rng.choice(len(where), batch, p=weights)
        obs = torch.from_numpy(np.stack([frame(*where[j]) for j in pick])).permute(0, 3, 1, 2).float()
        act = torch.from_numpy(targets[pick])
        _, log_prob, entropy = policy.evaluate_actions(obs, act)
        loss = -log_prob.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        done_now += 1
        losses.append(round(float(loss.item()), 4))
        bar.update(1)
        bar.set_postfix(nll=f"{loss.item():.3f}")
        if checkpoint_every and step % checkpoint_every == 0 and step < steps:
            save_checkpoint()
        if stop_after is not None and done_now >= stop_after and step < steps:
            save_checkpoint()
            bar.close()
            return {"stopped_early": True, "step": step}
    bar.close()
    k = max(1, min(50, len(losses) // 4))  # the means of the first and last quarter (at most 50 steps each)
    info = {**run, "algorithm": "behaviour cloning", "final_nll": float(np.mean(losses[-k:])),
            "first_nll": float(np.mean(losses[:k]))}
    save_policy(out, policy, spec, features_dim, list(net_arch), info)
    for name in (CHECKPOINT, "checkpoint.json"):
        (out / name).unlink(missing_ok=True)
    return {"stopped_early": False, "step": step, **info}
