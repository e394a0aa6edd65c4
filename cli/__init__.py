"""The `worldsim` command: the application layer over the four packages, one module per command group.

    cli.data      install-game, collect, rollout, import-vpt, import-minerl, stats
    cli.model     train, export
    cli.evaluate  eval
    cli.play      play
    cli.agent     agent train, agent eval
    cli.bench     bench
    cli.options   the options several commands share (which model dreams and how it samples), declared once

Nothing imports `cli`; it imports everything, lazily, so `worldsim --help` starts fast.
"""

from __future__ import annotations

import argparse
import sys

from cli import agent, bench, data, evaluate, model, play

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
