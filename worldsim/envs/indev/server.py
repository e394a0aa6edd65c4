"""The game process: `python -m worldsim.envs.indev.server`, started by `worldsim.envs.indev.process.GameProcess`.

It speaks one JSON line per request on its own stdout (the game's prints go to stderr) and writes each frame into
the shared-memory block the parent named. Requests: {"op": "step", "controls": {...}} and {"op": "close"}; every
answer carries the game's `info`, or {"error": "..."} before the process exits.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from multiprocessing import resource_tracker, shared_memory

import numpy as np


def serve(channel_in, channel_out) -> None:
    spec = json.loads(channel_in.readline())
    from worldsim.envs.indev.game import Controls, IndevGame, LevelSpec

    shm = shared_memory.SharedMemory(name=spec["shm"])
    # the parent owns the block: without this the child's resource tracker would unlink it when the child exits
    resource_tracker.unregister(shm._name, "shared_memory")
    try:
        size = int(spec["size"])
        frame = np.ndarray((size, size, 3), np.uint8, buffer=shm.buf)
        game = IndevGame(int(spec["seed"]), size, LevelSpec(**spec["level"]))
        frame[:] = game.render()
        reply(channel_out, {"ready": True, "info": game.info()})
        for line in channel_in:
            request = json.loads(line)
            if request["op"] == "close":
                break
            if request["op"] == "step":
                c = request["controls"]
                game.step(Controls(**{**c, "camera": tuple(c["camera"])}))
                frame[:] = game.render()
                reply(channel_out, {"info": game.info()})
            elif request["op"] == "block":
                reply(channel_out, {"block": game.block_at(*request["xyz"])})
            elif request["op"] in COMMANDS:
                try:
                    getattr(game, request["op"])(**request["args"])
                except ValueError as e:  # a bad argument: refused, and the game goes on
                    reply(channel_out, {"refused": str(e)})
                    continue
                frame[:] = game.render()
                reply(channel_out, {"info": game.info()})
            else:
                raise ValueError(f"unknown request {request['op']!r}")
    finally:
        del frame
        shm.close()


COMMANDS = ("teleport", "set_block", "give")


def reply(channel_out, message: dict) -> None:
    channel_out.write(json.dumps(message) + "\n")
    channel_out.flush()


def main() -> None:
    channel_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever the game prints must not enter the channel
    sys.stdout = sys.stderr
    try:
        serve(sys.stdin, channel_out)
    except Exception as e:  # the parent turns this into one clear error
        traceback.print_exc()
        try:
            reply(channel_out, {"error": f"{type(e).__name__}: {e}"})
        except OSError:
            pass
        sys.exit(1)


if __name__ == "__main__":
    main()
