"""`worldsim agent train` (PPO in the dream, resumable) and `worldsim agent eval` (policies scored over fixed
seeds in any env, with 95 % intervals)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from worldsim.cli.options import add_command, add_dream_starts, add_world_model, dataset, json_file, neural_kwargs, run


def _train(a: argparse.Namespace) -> int:
    from worldsim.agents.discrete import DiscreteActionSpec
    from worldsim.agents.ppo import train_ppo

    info = train_ppo(a.out, env_id=a.env, task=a.task, steps=a.steps, num_envs=a.num_envs, seed=a.seed,
                     n_steps=a.n_steps, batch_size=a.batch_size, learning_rate=a.lr, gamma=a.gamma, progress=not a.quiet,
                     spec=DiscreteActionSpec(clicks=tuple(a.click), repeat=a.repeat), resume=a.resume,
                     checkpoint_every=a.checkpoint_every, episode_steps=a.episode_steps, init=a.init,
                     ent_coef=a.ent_coef, **neural_kwargs(a))
    print(json.dumps(info))
    return 0


def _bc(a: argparse.Namespace) -> int:
    from worldsim.agents.bc import train_bc
    from worldsim.agents.discrete import DiscreteActionSpec

    info = train_bc(a.data, a.out, task=a.task, steps=a.steps, batch=a.batch, learning_rate=a.lr, seed=a.seed,
                    resume=a.resume, checkpoint_every=a.checkpoint_every, progress=not a.quiet,
                    spec=DiscreteActionSpec(repeat=a.repeat))
    print(json.dumps(info))
    return 0


def _calibrate(a: argparse.Namespace) -> int:
    from worldsim.agents.calibration import calibration_table
    from worldsim.io.atomic import write_json_atomic

    table = calibration_table(a.checkpoint, a.data, task=a.task, leads=tuple(a.lead), seed=a.seed)
    real = table["real_steps"]
    print(f"{a.task} on {real['steps']} real held-out steps: the game paid {real['real_rewards']} times, the heads "
          f"{real['predicted_rewards']} (recall {real['recall']}, precision {real['precision']})")
    for d in table["dreams"]:
        print(f"  dreams started {d['lead']} steps before a real reward: {d['paid_before_rewards']} paid "
              f"({d['starts_before_rewards']} starts); started where none came: {d['paid_without_rewards']} paid "
              f"({d['starts_without_rewards']} starts)")
    if a.out:
        write_json_atomic(a.out, table)
    return 0


def _eval(a: argparse.Namespace) -> int:
    from worldsim.agents.evaluate import evaluate_policy
    from worldsim.io.atomic import write_json_atomic

    results = [evaluate_policy(a.env, pol, episodes=a.episodes, seed=a.seed, task=a.task, progress=not a.quiet,
                               deterministic=a.deterministic, episode_steps=a.episode_steps, **neural_kwargs(a))
               for pol in a.policy]
    print(f"{a.env} task={a.task} episodes={a.episodes} seeds {a.seed}..{a.seed + a.episodes - 1}")
    for r in results:
        print(f"  {r['policy']:<30} return {r['mean_return']:7.2f}  95% CI [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
              f"  ({r['steps_per_s']} steps/s)")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(a.out, results)
    return 0


def register(sub) -> None:
    ag = sub.add_parser("agent", help="RL agents: train PPO in the dream, score policies in any env")
    agsub = ag.add_subparsers(dest="agent_command", required=True)
    bc = add_command(agsub, "bc", "behaviour cloning: a pixel policy (PPO's network) trained on a dataset's frames and "
                     "actions", _bc)
    bc.add_argument("--data", type=dataset, required=True, help="dataset with the recorded play to clone")
    bc.add_argument("--task", default="treechop", help="whose events weigh more: treechop, dig or obtain")
    bc.add_argument("--out", required=True, help="policy folder (policy.safetensors + policy.json)")
    bc.add_argument("--steps", type=int, default=3000, help="gradient steps")
    bc.add_argument("--batch", type=int, default=128, help="frames per step")
    bc.add_argument("--lr", type=float, default=3e-4)
    bc.add_argument("--seed", type=int, default=0)
    bc.add_argument("--repeat", type=int, default=4, help="env steps the policy holds each choice when it plays "
                    "(stored with it; a log needs ~80 steps of attack held)")
    bc.add_argument("--resume", action="store_true", help="carry on the unfinished run in --out from its checkpoint")
    bc.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (0: none)")
    bc.add_argument("--quiet", action="store_true")

    at = add_command(agsub, "train", "PPO (Stable-Baselines3) on the vector env of --env under --task", _train)
    at.add_argument("--env", default="worldsim/NeuralMinecraft-v0")
    at.add_argument("--task", default="dig", help="dig, treechop or obtain (envs/tasks.py)")
    at.add_argument("--steps", type=int, default=100_000, help="the policy's decisions (env steps / --repeat)")
    at.add_argument("--out", required=True, help="policy folder (policy.safetensors + policy.json)")
    at.add_argument("--num-envs", type=int, default=16)
    at.add_argument("--n-steps", type=int, default=64, help="PPO rollout length per env")
    at.add_argument("--batch-size", type=int, default=256)
    at.add_argument("--lr", type=float, default=3e-4)
    at.add_argument("--gamma", type=float, default=0.95, help="discount: 0.99 for rewards that come ~100 steps after "
                    "the actions that earn them (a log takes ~80 steps of attacking)")
    at.add_argument("--click", nargs="*", default=[], metavar="KEY",
                    help="keys the policy clicks instead of holding (e.g. attack use)")
    at.add_argument("--init", help="policy folder to start from and stay near (the cloned policy, `agent bc`): its "
                    "network and action spec are taken, and --ent-coef weighs the KL to it instead of the entropy")
    at.add_argument("--ent-coef", type=float, default=0.01, help="weight of the entropy bonus (with --init: of the KL "
                    "penalty toward the init policy)")
    at.add_argument("--repeat", type=int, default=1, help="env steps each choice is held (the frame skip)")
    at.add_argument("--seed", type=int, default=0)
    at.add_argument("--resume", action="store_true", help="carry on the unfinished run in --out from its checkpoint")
    at.add_argument("--checkpoint-every", type=int, default=10_000, help="env steps between checkpoints (0: none)")
    at.add_argument("--episode-steps", type=int, help="episodes of this many steps instead of the task's (dreams drift "
                    "as they go: shorter ones restart from real openings more often)")
    add_world_model(at)
    add_dream_starts(at)
    at.add_argument("--quiet", action="store_true")

    ac = add_command(agsub, "calibrate", "does the dream pay? the reward heads against the game's reward on held-out "
                     "steps, and in dreams started just before real rewards", _calibrate)
    ac.add_argument("--data", type=dataset, required=True, help="held-out dataset (recorded with counts)")
    ac.add_argument("--task", default="treechop", help="dig, treechop or obtain")
    ac.add_argument("--lead", type=int, nargs="+", default=[10, 40], help="steps between a dream's start and the real reward")
    ac.add_argument("--seed", type=int, default=0)
    ac.add_argument("--checkpoint", type=run, help="world model (default: the shipped model)")
    ac.add_argument("--out", type=json_file, help="write the table as JSON here")

    ae = add_command(agsub, "eval", "mean return and 95%% interval of policies over fixed seeds", _eval)
    ae.add_argument("--env", default="worldsim/MinecraftIndev-Dig-v0")
    ae.add_argument("--task", default="dig", help="dig, treechop or obtain (envs/tasks.py)")
    ae.add_argument("--policy", nargs="+", required=True,
                    help="explore, explore-trees, random, mix, a policy folder, or module:factory")
    ae.add_argument("--episodes", type=int, default=20)
    ae.add_argument("--seed", type=int, default=0, help="episode i plays seed + i")
    add_world_model(ae, checkpoint_help="world model, for the neural env (default: the shipped model)")
    add_dream_starts(ae)
    ae.add_argument("--deterministic", action="store_true", help="trained policies take their most likely action")
    ae.add_argument("--episode-steps", type=int, help="dreams: episodes of this many steps instead of the task's")
    ae.add_argument("--out", type=json_file, help="write the results as JSON here")
    ae.add_argument("--quiet", action="store_true")
