"""The architecture as a rule: the packages import one way only, and every module is used by another."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What each package may import of the others: worldsim <- envs <- agents <- data_collect <- bench <- cli.
ALLOWED = {
    "worldsim": set(),
    "envs": {"worldsim"},
    "agents": {"worldsim", "envs"},
    "data_collect": {"worldsim", "envs", "agents"},
    "bench": {"worldsim", "envs", "agents", "data_collect"},
    "cli": {"worldsim", "envs", "agents", "data_collect", "bench"},
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


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
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_packages_import_one_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in _modules(package):
            for name in _imports(path):
                top = name.split(".")[0]
                if top in ALLOWED and top != package and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_every_module_is_used():
    """A module no other module of the project imports (or starts as a process) is dead code; tests do not
    count as users."""
    used = set()
    for package in ALLOWED:
        for path in _modules(package):
            used |= _imports(path) | _launched(path)
    unused = [_module_name(p) for package in ALLOWED for p in _modules(package)
              if p.stem not in ("__init__", "__main__") and _module_name(p) not in used]
    assert not unused, f"modules nothing imports: {unused}"


def test_the_command_is_the_cli_package():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'worldsim = "cli:main"' in text
    for package in ALLOWED:
        assert f'"{package}*"' in text, f"{package} is not in the distribution"
