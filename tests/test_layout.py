"""The code's shape: imports flow one way, and each module stays small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "target_ortto"
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every target_ortto module a file imports, type-checking-only imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {node.module, *names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules} - {module_name(path)}


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of modules, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for child in sorted(graph.get(node, ())):
            found = visit(child, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    return next((c for node in sorted(graph) if (c := visit(node, []))), None)


def test_the_import_graph_has_no_cycle():
    assert cycle(import_graph()) is None


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_imports_flow_from_target_to_sinks_to_run_and_never_back():
    graph = import_graph()
    entry_points = {"target_ortto.target", "target_ortto.__main__", "target_ortto.settings_docs"}
    below_target = set(graph) - entry_points
    assert all("target_ortto.target" not in graph[m] for m in below_target)
    run_and_below = {"target_ortto.run", "target_ortto.client", "target_ortto.ledger"}
    for module in run_and_below | {"target_ortto.report", "target_ortto.dispatch"}:
        assert not any(i.startswith("target_ortto.sinks") for i in graph[module]), module


def test_the_sandbox_imports_nothing_from_the_target():
    for module, imported in import_graph().items():
        if module.startswith("target_ortto.sandbox"):
            assert all(i.startswith("target_ortto.sandbox") for i in imported), module


def test_no_module_is_too_long_to_read():
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
