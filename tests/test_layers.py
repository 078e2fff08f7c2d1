"""The package's structure, as README's "Where things are" states it: imports point one way (no module
imports a layer above its own), every module lists its public names in ``__all__``, and no module
imports another module's underscore names."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
# Lowest first; a module may import its own layer and those before it. yardsticks (tests and benchmarks
# only) may import anything; nothing at run time imports it.
LAYERS = [
    "vocabulary",
    "paths",
    "provenance",
    "runtime",
    "distributed",
    "rewards",
    "config",
    "models",
    "data",
    "eval",
    "train",
    "study",
    "sweep",
    "report",
    "cli",
    "yardsticks",
]
RANK = {name: 0 if i < 5 else i for i, name in enumerate(LAYERS)}  # the first five: one floor
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "assets" not in p.parts)


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness."):
            yield node


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    here = _layer(path)
    for node in _imports(path):
        there = node.module.split(".")[1]
        assert there != "yardsticks" or here == "yardsticks", f"{path.name}:{node.lineno} imports a yardstick"
        assert RANK[there] <= RANK[here], f"{path.name}:{node.lineno}: {here} imports {node.module} (a layer above)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_public_names_are_explicit_and_private_ones_stay_home(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    defines = any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body)
    assert "__all__" in names or not defines, f"{path.name} defines names but has no __all__"
    for node in _imports(path):
        private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        assert not private, f"{path.name}:{node.lineno} imports {private} from {node.module}"
