"""Imports point down (docs/architecture.md, "The layers"): each module of farm imports only
from its own layer and the layers below it, lazily imported names included."""

from __future__ import annotations

import ast
import pathlib

FARM = pathlib.Path(__file__).resolve().parent.parent / "farm"

LEAVES = ("farm.errors", "farm.data", "farm.serialize", "farm.execute", "farm.resources",
          "farm.requests", "farm.version")
# layer: the layers it may import from (leaves always allowed, and its own layer)
MAY_IMPORT = {
    "farm.spool": (),
    "farm.pool": ("farm.spool",),
    "farm.dataflow": (),
    "farm.executors": ("farm.dataflow", "farm.spool"),
    "farm.providers": ("farm.executors.base", "farm.launchers", "farm.spool"),
    "farm.launchers": (),
}
TOP = ("farm", "farm.apps", "farm.config", "farm.site", "farm.runs", "farm.cli")


def layer(module: str) -> str:
    for name in (*LEAVES, *MAY_IMPORT, *TOP[1:]):
        if module == name or module.startswith(name + "."):
            return name
    return "farm"


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """farm imports in the module, at any depth, but for those under `if TYPE_CHECKING:`
    (names for annotations only: no dependency when the code runs)."""
    out = []
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING"
                   for body in node.body for n in ast.walk(body)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("farm")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("farm"):
            names = [f"{node.module}.{a.name}" if node.module == "farm" else node.module
                     for a in node.names]
            out += [(node.lineno, n) for n in names]
    return out


def test_imports_point_down():
    wrong = []
    for path in sorted(FARM.rglob("*.py")):
        rel = path.relative_to(FARM.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        mine = layer(module)
        if mine in TOP:
            continue  # the top may use everything
        allowed = (*LEAVES, mine, *MAY_IMPORT.get(mine, ()))
        for line, target in imports(path):
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{rel}.py:{line}: {mine} imports {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)
