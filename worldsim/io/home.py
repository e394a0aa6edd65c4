"""The data home: where datasets and training runs live by default, outside any checkout.

    $WORLDSIM_HOME (default ~/.cache/worldsim, or $XDG_CACHE_HOME/worldsim)
        datasets/NAME   datasets (`worldsim collect --out NAME`)
        runs/NAME       training runs (`worldsim train --out NAME`, `worldsim continue`)

Why outside the checkout: data and runs are what hours of compute made; a fresh clone, a new work tree or
`git clean` must find them where they were. A bare name (no folder in it) that is not a folder here names a place
in the data home; any other path is used as given, so an explicit path always wins.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The data home (not created until something is written there)."""
    if os.environ.get("WORLDSIM_HOME"):
        return Path(os.environ["WORLDSIM_HOME"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "worldsim"


def place(name: str | os.PathLike, kind: str) -> Path:
    """Where a dataset (kind "datasets") or run (kind "runs") called `name` lives: a bare name that is not a
    folder here -> the data home's `kind/name`; anything else as given."""
    if kind not in ("datasets", "runs"):
        raise ValueError(f"kind must be 'datasets' or 'runs', got {kind!r}")
    text, p = os.fspath(name), Path(name)
    bare = "/" not in text and os.sep not in text and text not in (".", "..", "")
    return home() / kind / text if bare and not p.exists() else p
