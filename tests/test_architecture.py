"""The package's floors, enforced: one direction of dependency and no import circles.

Every ``import`` of the package's own modules counts, lazy (function-level) ones included:
a lazy import that hides a circle is still a circle. ``if TYPE_CHECKING:`` imports never run
and are left out. See docs/architecture.md for the floors and why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "rearq_tasks"
SURFACES = ("api", "admin", "ops")

# Lowest floor first. A module may import its own floor and the floors below it.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("lifecycle", "redaction", "queue.keys"),
    ("conf", "conf.spec"),
    (
        "models",
        "vocabulary",
        "rollups",
        "rollup_sql",
        "payloads",
        "access",
        "conf.reporting",
        "conf.checks",
        "queue.connection",
        "operation_models",
        "audit",
    ),
    ("queries",),
    ("capture",),
    ("queue",),
    SURFACES + ("templatetags",),
    ("management", "urls", "apps", ""),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, here: str, is_package: bool) -> set[str]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = here.split(".") if is_package else here.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module (relative to ``rearq_tasks``, "" for the package) → the package modules it imports."""
    files = {
        _module_name(path): path for path in ROOT.rglob("*.py") if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        full = f"rearq_tasks.{name}".rstrip(".")
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for imported in _imports(tree, full, path.name == "__init__.py"):
            if imported == "rearq_tasks" or not imported.startswith("rearq_tasks."):
                continue
            short = imported[len("rearq_tasks.") :]
            # `from rearq_tasks.x import name`: the module x, or x.name when that is a module.
            while short and short not in files:
                short = short.rpartition(".")[0]
            if short and short != name:
                targets.add(short)
        graph[name] = targets
    return graph


def floor_of(module: str) -> int:
    """The floor of the most specific prefix named in FLOORS."""
    best, best_len = None, -1
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            matches = module == prefix or (prefix and module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"rearq_tasks.{module} is on no floor: add it to FLOORS")
    return best


def surface_of(module: str) -> str | None:
    head = module.split(".")[0]
    if head == "templatetags":
        return "admin"  # the admin's template tags
    return head if head in SURFACES else None


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if floor_of(target) > floor_of(module):
                wrong.append(f"{module} -> {target} (a lower floor imports a higher one)")
            surface, other = surface_of(module), surface_of(target)
            if surface and other and surface != other:
                wrong.append(f"{module} -> {target} (a surface imports another surface)")
    return wrong


def test_the_package_has_no_import_circle() -> None:
    assert circles(import_graph()) == []


def test_no_arrow_points_up_or_across_surfaces() -> None:
    assert forbidden_arrows(import_graph()) == []


def test_every_module_is_on_a_floor() -> None:
    for module in import_graph():
        floor_of(module)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_circle_finder_finds_circles(graph: dict[str, set[str]], expected: list) -> None:
    assert circles(graph) == expected


@pytest.mark.parametrize(
    ("module", "target", "reason"),
    [
        ("models", "queries.stats", "a lower floor imports a higher one"),
        ("lifecycle", "conf", "a lower floor imports a higher one"),
        ("capture.hooks", "queue.client", "a lower floor imports a higher one"),
        ("queries.stats", "api.views", "a lower floor imports a higher one"),
        ("ops.metrics", "api.views", "a surface imports another surface"),
        ("templatetags.rearq_tasks_admin", "api.filters", "a surface imports another surface"),
    ],
)
def test_forbidden_arrows_are_caught(module: str, target: str, reason: str) -> None:
    wrong = forbidden_arrows({module: {target}, target: set()})
    assert any(reason in line for line in wrong), wrong


def test_lazy_imports_count_and_type_checking_ones_do_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from rearq_tasks.queries import stats\n"
        "def f():\n    from rearq_tasks.models import TaskLog\n"
    )
    found = _imports(ast.parse(source), "rearq_tasks.lifecycle", False)
    assert "rearq_tasks.models" in found
    assert "rearq_tasks.queries" not in found


def test_every_public_name_resolves() -> None:
    import rearq_tasks

    for name in rearq_tasks.__all__:
        assert getattr(rearq_tasks, name) is not None, name


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_small() -> None:
    """Modules ≤ 400 lines, functions ≤ 60 (migrations are generated and left out)."""
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        name = path.relative_to(ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}: {node.name}() {length} lines")
    assert too_long == []
