"""The import layers of ARCHITECTURE.md hold: every module of sreval and raters_app belongs to a layer of its
table, imports nothing from a later layer, and no modules import each other in a cycle.

The layer table is read from ARCHITECTURE.md itself, so the document and the check cannot drift apart. Every
import counts, also one inside a function or under `if TYPE_CHECKING:`: each is a dependency of the module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELLS = ("raters_app",)  # top-level packages outside `sreval` that are part of the stack


def layer_table() -> dict[str, int]:
    """Module name (`sreval.metrics`, `raters_app`) → layer number, from the table of ARCHITECTURE.md."""
    table: dict[str, int] = {}
    for line in (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines():
        row = re.match(r"\|\s*(\d+)\s[^|]*\|([^|]*)\|", line)
        if not row:
            continue
        for name in re.findall(r"`([A-Za-z_][\w./]*)`", row.group(2)):
            name = name.rstrip("/").replace("/", ".")
            table[name if name in SHELLS else f"sreval.{name}"] = int(row.group(1))
    return table


def module_files() -> dict[str, Path]:
    files = {}
    for top in ("sreval", *SHELLS):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` imports (a submodule where one is named, else its package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(module: str, table: dict[str, int]) -> int | None:
    while module:
        if module in table:
            return table[module]
        module = module.rpartition(".")[0]
    return None


def graph() -> tuple[dict[str, set[str]], dict[str, int]]:
    files = module_files()
    table = {**layer_table(), "sreval": 1}  # the package root holds only the version numbers
    edges = {name: imports_of(name, path, set(files)) for name, path in files.items()}
    return edges, table


def test_the_layer_table_is_read_from_the_document() -> None:
    table = layer_table()
    assert table["sreval.errors"] == 1
    assert table["sreval.matlab"] < table["sreval.metrics"] < table["sreval.benchmark"] < table["sreval.analysis"]
    assert table["raters_app"] == table["sreval.cli"] == max(table.values())


def test_every_module_belongs_to_a_layer() -> None:
    edges, table = graph()
    assert not [m for m in edges if layer_of(m, table) is None], "add these modules to ARCHITECTURE.md's table"


def upward_imports(edges: dict[str, set[str]], table: dict[str, int]) -> list[str]:
    return sorted(
        f"{module} (layer {layer_of(module, table)}) imports {target} (layer {layer_of(target, table)})"
        for module, targets in edges.items()
        for target in targets
        if (layer_of(target, table) or 0) > (layer_of(module, table) or 0)
    )


def test_no_module_imports_from_a_later_layer() -> None:
    edges, table = graph()
    upward = upward_imports(edges, table)
    assert not upward, "\n".join(upward)


def test_the_analysis_reads_no_database() -> None:
    """Statistics take DataFrames: the shells fetch ratings and metric values from the stores. (The study's
    rater model is plain numbers, shared by the simulator and the power analysis.)"""
    files = module_files()
    storage = ("sreval.db", "sreval.results", "sreval.study", "sqlalchemy")
    known = set(files) | set(storage)
    reads = {
        name: sorted(
            t for t in imports_of(name, path, known) if t.startswith(storage) and t != "sreval.study.rater_model"
        )
        for name, path in files.items()
        if name.startswith("sreval.analysis")
    }
    assert reads and not {name: targets for name, targets in reads.items() if targets}


def test_no_import_cycles() -> None:
    edges, _ = graph()
    cycles = [sorted(component) for component in strongly_connected(edges) if len(component) > 1]
    assert not cycles, "\n".join(" ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import sreval.matlab.imresize\n", {"sreval.matlab.imresize"}),
        ("from sreval.matlab import imresize\n", {"sreval.matlab.imresize"}),
        ("from sreval.matlab.imresize import imresize\n", {"sreval.matlab.imresize"}),
        ("from sreval import settings, __version__\n", {"sreval.settings", "sreval"}),
        ("from . import color\n", {"sreval.matlab.color"}),
        ("def f():\n    from ..errors import SrevalError\n", {"sreval.errors"}),
        ("import numpy\nfrom typing import TYPE_CHECKING\n", set()),
    ],
)
def test_imports_are_resolved_to_modules(tmp_path: Path, source: str, expected: set[str]) -> None:
    path = tmp_path / "rounding.py"
    path.write_text(source, encoding="utf-8")
    known = {"sreval", "sreval.settings", "sreval.errors", "sreval.matlab", "sreval.matlab.imresize",
             "sreval.matlab.color", "sreval.matlab.rounding"}  # fmt: skip
    assert imports_of("sreval.matlab.rounding", path, known) == expected


def test_a_cycle_and_an_upward_import_are_found() -> None:
    edges = {"x.a": {"x.b"}, "x.b": {"x.c"}, "x.c": {"x.a"}, "x.d": {"x.a"}}
    assert [sorted(c) for c in strongly_connected(edges) if len(c) > 1] == [["x.a", "x.b", "x.c"]]
    table = {"x.a": 1, "x.b": 1, "x.c": 1, "x.d": 2}
    assert upward_imports(edges, table) == []
    assert upward_imports({**edges, "x.a": {"x.b", "x.d.sub"}}, table) == ["x.a (layer 1) imports x.d.sub (layer 2)"]


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of the import graph (iterative: the graph has a few hundred
    modules, but recursion depth should not depend on it)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components
