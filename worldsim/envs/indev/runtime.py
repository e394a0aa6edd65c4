"""The game process's own NumPy: Indev's compiled modules are built against NumPy 1, the rest of worldsim runs on 2.

`minecraft-python==0.31.20100130` (a dependency of worldsim) imports only under NumPy 1.x, while Minari,
PyArrow and the rest need NumPy 2. The game runs in a process of its own anyway (`envs/indev/process.py`), so
that process alone sees a NumPy 1 from a folder of its own, placed first on its path: `worldsim install-game`
(and `./setup.sh`) fills the folder once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GAME_NUMPY = "numpy==1.26.4"


class GameNotInstalledError(RuntimeError):
    """The game process's NumPy folder is missing: the message says how to fill it."""


def game_site() -> Path:
    """Where the game process's NumPy lives (inside the Python environment, or $WORLDSIM_GAME_SITE)."""
    return Path(os.environ.get("WORLDSIM_GAME_SITE", Path(sys.prefix) / "share" / "worldsim" / "game-site"))


def require_game_site() -> Path:
    site = game_site()
    if not (site / "numpy" / "__init__.py").is_file():
        raise GameNotInstalledError(
            f"the Indev game's process needs {GAME_NUMPY} in {site}, which is missing: run `worldsim install-game` "
            "once (./setup.sh does it)")
    return site


def install_game_site(quiet: bool = True) -> Path:
    """pip-install the game process's NumPy into `game_site()` (from the package index, once)."""
    site = game_site()
    cmd = [sys.executable, "-m", "pip", "install", "--target", str(site), "--no-deps", "--upgrade", GAME_NUMPY]
    subprocess.run(cmd + (["-q"] if quiet else []), check=True)
    return site
