"""No import circles: every module of the package imports on its own, and the import graph (module-level and
function-level imports alike, read with ast) has no cycle. ``report/`` reaches into ``training/`` only through
the public loading module."""

import ast
import importlib
from pathlib import Path

import pytest

import advantage

PACKAGE = Path(advantage.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, from every ``import`` statement anywhere in its file.
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    graph = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                for a in node.names:
                    targets.add(f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module)
        graph[name] = {t for t in targets if t in MODULES and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_report_uses_only_the_loading_module_of_training():
    """report/ loads runs (training.loading) and plays episodes (training.rollout, which imports only seeding);
    it never reaches the session, the steppers or the back ends' training loops."""
    graph = import_graph()
    used = {t for m, ts in graph.items() if m.startswith("advantage.report") for t in ts
            if t.startswith("advantage.training")}
    assert used <= {"advantage.training", "advantage.training.loading", "advantage.training.rollout"}, used
    assert graph["advantage.training.rollout"] <= {"advantage.training.seeding"} | {
        t for t in graph["advantage.training.rollout"] if not t.startswith("advantage.")}


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
