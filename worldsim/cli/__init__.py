"""The `worldsim` command: the application layer over the four packages, one module per command group.

    worldsim.cli.data      install-game, collect, rollout, import-vpt, import-minerl, stats
    worldsim.cli.model     train, export
    worldsim.cli.evaluate  eval
    worldsim.cli.play      play
    worldsim.cli.agent     agent train, agent eval
    worldsim.cli.bench     bench
    worldsim.cli.options   the options several commands share (which model dreams and how it samples), declared once

Nothing imports `cli`; it imports everything, lazily, so `worldsim --help` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from worldsim.cli import agent, bench, data, evaluate, model, play

GROUPS = (data, model, evaluate, play, agent, bench)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldsim", description="A neural Minecraft: collect, train, play, evaluate.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"worldsim {args.command}: error: {e}", file=sys.stderr)
        return 2
