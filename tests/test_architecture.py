"""The layering of docs/architecture.md, checked on the real import graph (issue 16).

Every import of `src/modelreg` counts (top of a module or inside a function), except those
under `if TYPE_CHECKING:`. The test fails on an import cycle, on an import from a lower
layer to a higher one that docs/architecture.md does not list as a known exception, on a
listed exception that no longer exists, and on a module the table does not place.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "modelreg").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> set[str]:
    """The modelreg modules `module` imports at run time (including inside functions)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("modelreg") and (target := _resolve(alias.name)):
                    found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.startswith("modelreg"):
                for alias in node.names:
                    full = f"{origin}.{alias.name}"
                    target = full if full in MODULES else _resolve(origin)
                    if target:
                        found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(module)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _short(module: str) -> str:
    return module.removeprefix("modelreg.") if module != "modelreg" else "modelreg"


def _table(heading: str) -> list[list[str]]:
    """The rows of the first table after `## heading` in docs/architecture.md."""
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def _layers() -> tuple[list[str], dict[str, str]]:
    order: list[str] = []
    patterns: dict[str, str] = {}
    for layer, cell in _table("The layers"):
        order.append(layer)
        for name in re.findall(r"`([^`]+)`", cell):
            assert name not in patterns, f"{name} is placed twice"
            patterns[name] = layer
    return order, patterns


ORDER, PATTERNS = _layers()


def layer_of(module: str) -> str | None:
    """The layer docs/architecture.md places `module` in (exact names before `x.*`)."""
    short = _short(module)
    if short in PATTERNS:
        return PATTERNS[short]
    parts = short.split(".")
    for i in range(len(parts) - 1, 0, -1):
        star = ".".join(parts[:i]) + ".*"
        if star in PATTERNS:
            return PATTERNS[star]
    return None


def _exceptions() -> set[tuple[str, str]]:
    return {(re.sub(r"`", "", a), re.sub(r"`", "", b)) for a, b, _ in _table("Known exceptions")}


def test_every_module_has_a_layer() -> None:
    missing = sorted(_short(m) for m in MODULES if layer_of(m) is None)
    assert not missing, f"docs/architecture.md places no layer for: {', '.join(missing)}"


def test_every_name_in_the_table_is_a_module() -> None:
    shorts = {_short(m) for m in MODULES}
    stale = [
        n
        for n in PATTERNS
        if n not in shorts and not (n.endswith(".*") and any(s.startswith(n[:-1]) for s in shorts))
    ]
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:  # Tarjan, iterative enough for 110 modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(_short(c) for c in comp))

    for v in sorted(GRAPH):
        if v not in index:
            connect(v)
    return out


def test_no_import_cycle() -> None:
    assert _cycles() == []


def _upward() -> set[tuple[str, str]]:
    rank = {layer: i for i, layer in enumerate(ORDER)}
    bad = set()
    for module, targets in GRAPH.items():
        here = layer_of(module)
        for target in targets:
            there = layer_of(target)
            if here is not None and there is not None and rank[there] > rank[here]:
                bad.add((_short(module), _short(target)))
    return bad


def test_no_import_goes_up_a_layer() -> None:
    unexpected = sorted(_upward() - _exceptions())
    assert not unexpected, "imports against docs/architecture.md's layers: " + ", ".join(
        f"{a} -> {b}" for a, b in unexpected
    )


def test_known_exceptions_still_exist() -> None:
    """A fixed exception must leave the list, so that the list only shrinks."""
    gone = sorted(_exceptions() - _upward())
    assert not gone, f"no longer an exception, remove from docs/architecture.md: {gone}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from modelreg.store import Store\n", {"modelreg.store"}),
        ("def f():\n    from modelreg.catalog import resolve\n", {"modelreg.catalog"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import modelreg.store\n", set()),
        ("from modelreg import yamlio, Store\n", {"modelreg.yamlio", "modelreg"}),
    ],
)
def test_the_graph_counts_what_runs(tmp_path: Path, source: str, expected: set[str]) -> None:
    """The checker itself: imports in functions count, TYPE_CHECKING ones do not."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert _imports("modelreg.probe", path) == expected


def test_a_cycle_and_an_upward_import_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself, on a graph with one planted cycle and one upward import."""
    planted = {k: set(v) for k, v in GRAPH.items()}
    planted["modelreg.names"].add("modelreg.store")  # base -> facade, and a cycle
    monkeypatch.setattr(__import__(__name__, fromlist=["GRAPH"]), "GRAPH", planted)
    assert any("names" in c and "store" in c for c in _cycles())
    assert ("names", "store") in _upward()


MAX_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """Small modules with names that explain themselves (issue 16)."""
    long = {
        _short(m): n
        for m, p in MODULES.items()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines (split along a seam): {long}"
