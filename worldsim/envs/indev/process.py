"""The parent's side of a game process: start it, step it, read its frames, and turn its death into an error.

Each level lives in a fresh process (see `envs/indev/game.py` for why). Running the game apart also keeps its
OpenGL away from whatever the parent draws with (pygame's window), lets several games run side by side, and turns
a crash or a hang of the game into a `GameProcessError` instead of the death of the trainer.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from worldsim.envs.indev.game import Controls, LevelSpec
from worldsim.envs.indev.runtime import require_game_site

_ADDR_NO_RANDOMIZE = 0x0040000


class GameProcessError(RuntimeError):
    """The game process crashed, hung or refused a request; the message says which and what it printed last."""


def _fixed_addresses() -> None:
    """Runs in the child before exec: no address randomisation, so sets ordered by address iterate the same way."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality(_ADDR_NO_RANDOMIZE)
    except (OSError, AttributeError):
        pass


class GameProcess:
    """One running level. `step` sends one tick of controls and returns the game's info; `frame` is its picture."""

    def __init__(self, seed: int, size: int = 64, level: LevelSpec | None = None, timeout_s: float = 60.0,
                 wait: bool = True):
        site = require_game_site()  # before anything is made that would need cleaning up
        self.size = size
        self.timeout_s = timeout_s
        self._shm = shared_memory.SharedMemory(create=True, size=size * size * 3)
        self.frame = np.ndarray((size, size, 3), np.uint8, buffer=self._shm.buf)
        self._log = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONHASHSEED": "0", "LP_NUM_THREADS": "0", "PYTHONUNBUFFERED": "1",
               "WORLDSIM_GAME_PROCESS": "1"}  # `import worldsim` there registers no env ids (NumPy 1 on its path)
        env.pop("DISPLAY", None)  # the game renders through EGL, never on the user's X display
        root = str(Path(__file__).resolve().parents[3])  # the folder holding the worldsim package
        path = [str(site), root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(path)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "worldsim.envs.indev.server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, env=env, preexec_fn=_fixed_addresses, text=True, bufsize=1)
        spec = {"shm": self._shm.name, "size": size, "seed": int(seed), "level": asdict(level or LevelSpec())}
        self._send(spec)
        self._ready = False
        self.info: dict = {}
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Block until the level is generated and its first frame is in `frame` (a start may run in the background)."""
        if not self._ready:
            self.info = self._receive()["info"]
            self._ready = True

    def step(self, controls: Controls) -> dict:
        self.wait_ready()
        self._send({"op": "step", "controls": asdict(controls)})
        self.info = self._receive()["info"]
        return self.info

    def block_at(self, x: int, y: int, z: int) -> str:
        """The name of the block at a world position (for tests and evaluations that check what frames show)."""
        self.wait_ready()
        self._send({"op": "block", "xyz": [int(x), int(y), int(z)]})
        return self._receive()["block"]

    def command(self, op: str, **args) -> dict:
        """Run one of the game's commands (`teleport`, `set_block`, `give`); returns the info after it."""
        self.wait_ready()
        self._send({"op": op, "args": args})
        self.info = self._receive()["info"]
        return self.info

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, message: dict) -> None:
        try:
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._fail("the Indev game process died")

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        out = self._proc.stdout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"the Indev game process did not answer within {self.timeout_s:.0f} s (hung)")
            ready, _, _ = select.select([out], [], [], left)
            if ready:
                line = out.readline()
                if not line:
                    self._fail("the Indev game process died")
                message = json.loads(line)
                if "error" in message:
                    self._fail(f"the Indev game failed: {message['error']}")
                if "refused" in message:
                    raise ValueError(message["refused"])
                return message

    def _fail(self, what: str) -> None:
        code = self._proc.poll()
        if code is None:
            self._proc.kill()
            code = self._proc.wait()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip().splitlines()[-8:]
        self.close()
        detail = "\n  ".join(tail) if tail else "(it printed nothing)"
        raise GameProcessError(f"{what}; exit code {code}; last output:\n  {detail}")

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.stdin.write('{"op": "close"}\n')
                    proc.stdin.flush()
                    proc.wait(timeout=5)
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None
        if getattr(self, "_shm", None) is not None:
            self.frame = None
            self._shm.close()
            self._shm.unlink()
            self._shm = None
            self._log.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
