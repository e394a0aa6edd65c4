"""The architecture as a rule: the packages import one way only, and every module is used by another."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "worldsim"
#: The rooms of worldsim, in order: each may import only those before it.
ORDER = ("io", "data", "model", "sampling", "evaluation", "training", "envs", "agents", "data_collect", "bench", "cli")
ALLOWED = {room: set(ORDER[:i]) for i, room in enumerate(ORDER)}


def _modules(package: str) -> list[Path]:
    return sorted((PKG / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Absolute module names `path` imports, anywhere in it (lazy imports inside functions count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _launched(path: Path) -> set[str]:
    """Modules `path` starts as a process (`[sys.executable, "-m", "pkg.mod"]`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.List) and len(node.elts) >= 3:
            flag, mod = node.elts[1], node.elts[2]
            if isinstance(flag, ast.Constant) and flag.value == "-m" and isinstance(mod, ast.Constant):
                names.add(mod.value)
    return names


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts  # worldsim.<room>.<module>
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(name: str) -> str | None:
    """worldsim.<room>.x -> <room>; None for anything outside worldsim's rooms."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "worldsim" and parts[1] in ALLOWED else None


def test_packages_import_one_way():
    wrong = []
    for room, allowed in ALLOWED.items():
        for path in _modules(room):
            for name in _imports(path):
                other = _room(name)
                if other is not None and other != room and other not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_every_module_is_used():
    """A module no other module of the project imports (or starts as a process) is dead code; tests do not
    count as users."""
    used = set()
    for path in PKG.rglob("*.py"):
        used |= _imports(path) | _launched(path)
    unused = [_module_name(p) for room in ALLOWED for p in _modules(room)
              if p.stem not in ("__init__", "__main__") and _module_name(p) not in used]
    assert not unused, f"modules nothing imports: {unused}"


def test_one_namespace_one_command():
    """Installed, the project is the `worldsim` package alone (its rooms inside it), and the command is its cli."""
    text = (ROOT / "pyproject.toml").read_text()
    assert 'worldsim = "worldsim.cli:main"' in text and 'include = ["worldsim*"]' in text
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert tops == {"worldsim"}, tops
    assert {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()} == set(ORDER)


def test_import_worldsim_registers_the_env_ids_and_the_module_prefix_works():
    code = ("import gymnasium as gym; env = gym.make('worldsim:worldsim/MinecraftIndev-v0'); "
            "import worldsim; assert 'worldsim/NeuralMinecraft-v0' in gym.registry")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
