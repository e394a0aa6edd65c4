"""Options several commands share, declared once: the world model a command dreams with and how it samples."""

from __future__ import annotations

import argparse

KEY_GUIDANCE_HELP = ("g: draw what pressed keys do (a broken block, a step) g times more strongly than the model's "
                     "mean guess, at one more single-frame pass per frame (default: the checkpoint's; 0: off)")
PIXEL_PRIOR_HELP = ("on: make each new frame's motion prior by moving the last frame's pixels (exact small turns), off: by "
                    "moving its latents (default: the checkpoint's)")
PRIOR_START_HELP = ("s0 in [0, 1): start sampling a turning frame at noise level s0 from its motion prior instead of from "
                    "pure noise (0: off; default: the checkpoint's)")


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
    """--checkpoint, --sampling-steps and --key-guidance: which model dreams and how many passes a frame takes."""
    p.add_argument("--checkpoint", required=required, help=checkpoint_help)
    p.add_argument("--sampling-steps", type=int, nargs=sampling_steps_nargs,
                   help="network evaluations per frame (default: the checkpoint's)")
    p.add_argument("--key-guidance", type=float, help=KEY_GUIDANCE_HELP)


def add_prior_sampling(p: argparse.ArgumentParser) -> None:
    """--pixel-prior and --prior-start: how a loaded model makes a turning frame's motion prior."""
    p.add_argument("--pixel-prior", choices=["on", "off"], help=PIXEL_PRIOR_HELP)
    p.add_argument("--prior-start", type=float, help=PRIOR_START_HELP)


def apply_prior_sampling(model, a: argparse.Namespace) -> None:
    """--pixel-prior / --prior-start onto a loaded model (each only when given)."""
    pixel = None if a.pixel_prior is None else a.pixel_prior == "on"
    try:
        model.set_prior_sampling(pixel_prior=pixel, prior_start=a.prior_start)
    except ValueError as e:
        raise ValueError(f"--prior-start: {e}") from None


def neural_kwargs(a: argparse.Namespace) -> dict:
    """The world-model options of a command, passed on only when its --env is the neural env."""
    if "Neural" not in a.env:
        return {}
    return {"checkpoint": a.checkpoint, "sampling_steps": a.sampling_steps, "key_guidance": a.key_guidance}
