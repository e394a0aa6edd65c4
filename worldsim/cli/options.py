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


def json_file(path: str) -> str:
    """A JSON file to write: refused at once when it names a folder, before any measuring (the results of a long
    bench would otherwise be computed and then fail to write)."""
    from pathlib import Path

    if Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give the JSON file to write, e.g. {Path(path) / 'results.json'}")
    return path


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


def add_dream_starts(p: argparse.ArgumentParser) -> None:
    """--starts, --start-weight, --start-lead: dreams that start at a recorded dataset's steps."""
    p.add_argument("--starts", type=dataset, help="neural env: start dreams at this dataset's recorded steps (their "
                   "real context frames and actions) instead of the checkpoint's openings")
    p.add_argument("--start-weight", type=float, default=1.0, help="with --starts: a step shortly before the task's "
                   "reward is drawn this many times as often")
    p.add_argument("--start-lead", type=int, default=100, help="with --starts: how many steps before a reward count "
                   "as shortly before")


def neural_kwargs(a: argparse.Namespace) -> dict:
    """The world-model options of a command, passed on only when its --env is the neural env."""
    if "Neural" not in a.env:
        if getattr(a, "starts", None):
            raise SystemExit(f"--starts: {a.env} is not the neural env; only dreams start at a dataset's steps")
        return {}
    kw = {"checkpoint": a.checkpoint, "sampling_steps": a.sampling_steps}
    if getattr(a, "starts", None):
        kw.update(starts=a.starts, start_weight=a.start_weight, start_lead=a.start_lead)
    return kw
