"""Data commands: `install-game` (the real game's runtime, once after install), `collect` (a policy in the real game), `rollout` (an agent in the dream), `import-vpt`,
`import-minerl` and `stats`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from worldsim.cli.options import add_command, add_world_model, dataset, neural_kwargs


def _collect(a: argparse.Namespace) -> int:
    from worldsim.data.dataset import Dataset
    from worldsim.data_collect.collect import CollectConfig, collect
    from worldsim.data_collect.stats import action_stats, format_stats
    from worldsim.io.atomic import write_json_atomic

    cfg = CollectConfig(env_id=a.env, policy=a.policy, episodes=a.episodes, steps=a.steps, out=a.out,
                        workers=a.workers, size=a.size, seed=a.seed, first=a.first, video=a.video, ray=a.ray)
    print(json.dumps(collect(cfg, progress=not a.quiet)))
    stats = action_stats(Dataset(a.out))
    write_json_atomic(Path(a.out) / "action_stats.json", stats)
    print(format_stats(stats))
    return 0


def _install_game(a: argparse.Namespace) -> int:
    from worldsim.envs.indev.runtime import GAME_NUMPY, install_game_site

    site = install_game_site(quiet=a.quiet)
    print(f"the Indev game's process will use {GAME_NUMPY} from {site}")
    return 0


def _rollout(a: argparse.Namespace) -> int:
    from worldsim.data_collect.collect import CollectConfig, collect

    cfg = CollectConfig(env_id=a.env, policy=a.agent, episodes=a.episodes, steps=a.steps, out=a.out,
                        workers=a.workers, seed=a.seed, video=a.video, env_kwargs=neural_kwargs(a))
    print(json.dumps(collect(cfg, progress=not a.quiet)))
    return 0


def _import(a: argparse.Namespace, kind: str) -> int:
    from worldsim.data_collect.importers import import_minerl, import_vpt

    report = (import_vpt if kind == "vpt" else import_minerl)(a.src, a.out, size=a.size)
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"imported {len(report.imported)} episode(s) into {a.out}, skipped {len(report.skipped)}")
    return 0 if report.imported or not report.skipped else 1


def _stats(a: argparse.Namespace) -> int:
    from worldsim.data.dataset import Dataset
    from worldsim.data_collect.stats import action_stats, format_stats

    stats = action_stats(Dataset(a.data))
    print(json.dumps(stats, indent=1) if a.json else format_stats(stats))
    return 0


POLICY_HELP = "explore, explore-trees, random, mix, mix-trees, mix-spawn, mix-walk, a policy folder, or module:factory"


def register(sub) -> None:
    ig = add_command(sub, "install-game", "once after pip install: the NumPy 1 the Indev game's process runs on",
                     _install_game)
    ig.add_argument("--quiet", action="store_true")

    c = add_command(sub, "collect", "record rollouts of a policy in the real game into a dataset", _collect)
    c.add_argument("--env", default="worldsim/MinecraftIndev-v0")
    c.add_argument("--policy", default="explore", help=POLICY_HELP)
    c.add_argument("--episodes", type=int, default=10)
    c.add_argument("--steps", type=int, default=1000, help="steps per episode")
    c.add_argument("--out", type=dataset, required=True, help="dataset folder (resumes if it exists)")
    c.add_argument("--workers", type=int, default=1, help="games played at once (processes, or Ray actors)")
    c.add_argument("--ray", metavar="ADDRESS", help="play on a Ray cluster (\"auto\", \"ray://host:10001\") or "
                   "\"local\" (a Ray instance here); episodes come back and are written here (pip install 'worldsim[ray]')")
    c.add_argument("--size", type=int, default=64, help="frame size in pixels")
    c.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    c.add_argument("--first", type=int, default=0, help="index of the first episode: grow a dataset with another "
                   "policy after the episodes it holds (--episodes more from there)")
    c.add_argument("--video", action="store_true", help="also write an mp4 per episode")
    c.add_argument("--quiet", action="store_true")

    r = add_command(sub, "rollout", "record rollouts of an agent in the neural env (or any env) as a dataset", _rollout)
    r.add_argument("--env", default="worldsim/NeuralMinecraft-v0")
    add_world_model(r)
    r.add_argument("--agent", default="explore", help=POLICY_HELP)
    r.add_argument("--episodes", type=int, default=1)
    r.add_argument("--steps", type=int, default=200, help="steps per episode")
    r.add_argument("--out", type=dataset, required=True, help="dataset folder")
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--seed", type=int, default=0, help="episode i uses seed + i")
    r.add_argument("--video", action="store_true", help="also write an mp4 per episode")
    r.add_argument("--quiet", action="store_true")

    for kind, help_ in (("vpt", "import OpenAI VPT contractor data (NAME.mp4 + NAME.jsonl)"),
                        ("minerl", "import MineRL 0.4 dataset episodes (recording.mp4 + rendered.npz)")):
        i = add_command(sub, f"import-{kind}", help_, lambda a, kind=kind: _import(a, kind))
        i.add_argument("src", help="folder of recordings")
        i.add_argument("--out", type=dataset, required=True, help="dataset folder")
        i.add_argument("--size", type=int, default=64, help="frame size in pixels")

    s = add_command(sub, "stats", "action statistics of a dataset", _stats)
    s.add_argument("data", type=dataset, help="dataset folder")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
