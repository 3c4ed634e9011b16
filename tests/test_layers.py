"""The package's structure: layered modules without import cycles, output only in the CLI, settings read in
one place, and the bottom layer importing nothing above it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "registry"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every registry module `path` imports, at module level or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "registry"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "registry":
                target = node.module
            else:
                continue
            found.add(target)
            for alias in node.names:  # `from . import versions` imports a module
                if (PACKAGE.parent / (target.replace(".", "/") + "/" + alias.name + ".py")).is_file() or (
                    PACKAGE.parent / (target.replace(".", "/") + "/" + alias.name)
                ).is_dir():
                    found.add(f"{target}.{alias.name}")
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # Importing a package's own __init__ (`from . import __version__`) is not a layer above.
        graph[name] = {t for t in _imports(path) if t in modules and t != name and t != "registry"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_counting_in_function_imports_is_acyclic():
    graph = _graph()
    assert "registry.catalog" in graph and "registry.index" in graph["registry.catalog"]  # the parser sees imports
    assert "registry.lint" in graph["registry.catalog"]  # an in-function one (Entry.problems)
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_a_cycle_would_be_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_bottom_layer_imports_nothing_of_the_package_above_errors_and_text():
    graph = _graph()
    for bottom in ("registry.names", "registry.http", "registry.text", "registry.errors"):
        assert graph[bottom] <= {"registry.errors", "registry.text"}, (bottom, graph[bottom])


def test_only_the_cli_package_writes_to_stdout_or_stderr():
    writes = re.compile(r"\bprint\(|sys\.stdout|sys\.stderr")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if writes.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    # Asking whether stderr is a terminal (for the progress bar's default) writes nothing.
    offenders = [o for o in offenders if "sys.stderr.isatty()" not in o]
    assert not offenders, "\n".join(offenders)


def test_only_settings_reads_the_environment():
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in PACKAGE.rglob("*.py")
        if p.name != "settings.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if reads.search(line.split("#", 1)[0])
    ]
    assert not offenders, offenders
