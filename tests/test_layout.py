"""The package's shape: no import circle in harness/, and only the pipeline's own modules at its root."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"

# the pipeline: a matrix is loaded, its cells prepared and run, each classified and recorded
PIPELINE = {"__init__", "__main__", "cli", "pytest_plugin", "session", "prepare", "matrix", "reproducers", "outcome",
            "model", "errors", "paths", "progress", "textfile", "yamlsource", "shard", "interrupt", "output_regex",
            "rule_index"}


def module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The harness modules ``path`` imports, at its top or inside a function (either can close a circle)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:  # `from harness.cache import entry`: the submodule, if it is one
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(HARNESS.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    graph = import_graph()
    assert "harness.session" in graph["harness.commands.run"]  # imported inside cmd_run
    assert "harness.nixpkgs.provide" in graph["harness.nixpkgs"]  # `from .provide import ...`
    assert "harness.cache.entry" in graph["harness.session"]  # `from harness.cache import entry as cache_entry`


def test_cycles_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_harness() -> None:
    assert cycles(import_graph()) == []


def test_only_the_pipeline_at_the_root() -> None:
    """Everything else lives in a package by concern (cache, commands, docker, loader, results, root, ...)."""
    root = {p.stem for p in HARNESS.glob("*.py")}
    assert root - PIPELINE == set(), "place these in a package by concern (docs/extending.md)"
    assert all((p / "__init__.py").is_file() for p in HARNESS.iterdir() if p.is_dir() and p.name != "data"
               and p.name != "__pycache__")
