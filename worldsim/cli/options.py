"""Options several commands share, declared once: the world model a command dreams with and how it samples."""

from __future__ import annotations

import argparse


def dataset(name: str) -> str:
    """A dataset argument: a bare name is a dataset in the data home (`worldsim.io.home`), a path is itself."""
    from worldsim.io.home import place

    return str(place(name, "datasets"))


def run(name: str) -> str:
    """A run or checkpoint argument: a bare name is a run in the data home, a path is itself."""
    from worldsim.io.home import place

    return str(place(name, "runs"))


class Formatter(argparse.RawDescriptionHelpFormatter):
    """`--help` shows every option's default (those that have one: not None, False or empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_ = action.help or ""
        if "%(default)" in help_ or not _has_default(action):
            return help_
        return f"{help_} (default: %(default)s)".lstrip()

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):
            action.help = "(default: %(default)s)"  # argparse prints no help line for an option without help
        return super()._format_action(action)


def _has_default(action: argparse.Action) -> bool:
    d = action.default
    return not (d is None or d is False or d is argparse.SUPPRESS or (isinstance(d, list) and not d))


def add_command(sub, name: str, help_: str, func, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose one-line purpose shows in `worldsim --help` and whose `--help` shows defaults."""
    p = sub.add_parser(name, help=help_, description=description or help_, formatter_class=Formatter)
    p.set_defaults(func=func)
    return p


def add_world_model(p: argparse.ArgumentParser, required: bool = False, sampling_steps_nargs: str | None = None,
                    checkpoint_help: str = "world-model checkpoint or run folder (default: the shipped model)") -> None:
    """--checkpoint and --sampling-steps: which model dreams and how many network passes a frame takes."""
    p.add_argument("--checkpoint", type=run, required=required, help=checkpoint_help)
    p.add_argument("--sampling-steps", type=int, nargs=sampling_steps_nargs,
                   help="network passes per frame, a power of two (default: the checkpoint's)")


def neural_kwargs(a: argparse.Namespace) -> dict:
    """The world-model options of a command, passed on only when its --env is the neural env."""
    if "Neural" not in a.env:
        return {}
    return {"checkpoint": a.checkpoint, "sampling_steps": a.sampling_steps}
