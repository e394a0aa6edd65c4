"""`worldsim play`: the dream (or the real game, or both side by side) in a window, from the keyboard and mouse."""

from __future__ import annotations

import argparse

from worldsim.cli.options import add_command, add_world_model


def _play(a: argparse.Namespace) -> int:
    from worldsim.envs.play import PlayConfig, play

    factory = None
    if a.agent is None:
        mode = "real" if a.real else "side-by-side" if a.side_by_side else "neural"
    else:  # an agent plays the real game unless told to dream
        from functools import partial

        from worldsim.agents import make_policy

        mode = "neural" if a.dream else "side-by-side" if a.side_by_side else "real"
        factory = partial(make_policy, a.agent)
    play(PlayConfig(mode=mode, checkpoint=a.checkpoint, image=a.image, scale=a.scale, fps=a.fps, seed=a.seed,
                    sampling_steps=a.sampling_steps, out_dir=a.out_dir, compile=a.compile), agent_factory=factory, agent_name=a.agent or "")
    return 0


def register(sub) -> None:
    pl = add_command(sub, "play", "play the neural Minecraft in a window (or --real, or --side-by-side)", _play)
    add_world_model(pl)
    g = pl.add_mutually_exclusive_group()
    g.add_argument("--real", action="store_true", help="play the real game (Indev)")
    g.add_argument("--side-by-side", action="store_true", help="real game left, dream right, same inputs")
    g.add_argument("--dream", action="store_true", help="the dream (the default, but with --agent the real game is)")
    pl.add_argument("--agent", help="an agent plays instead of the keyboard: treechop (the shipped one), explore, "
                    "random, a policy folder or module:factory")
    pl.add_argument("--image", help="start the dream from this picture")
    pl.add_argument("--scale", type=int, default=8, help="window pixels per frame pixel")
    pl.add_argument("--fps", type=int, default=20, help="steps per second")
    pl.add_argument("--seed", type=int, default=0, help="which world (real) or opening clip (dream)")
    pl.add_argument("--out-dir", default="worldsim_captures", help="where F12 screenshots and F9 recordings go")
    pl.add_argument("--compile", action="store_true", help="fuse the dream's network passes (torch.compile): "
                    "about a minute before the window opens the first time, then faster steps")
