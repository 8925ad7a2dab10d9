"""The layout's rules, checked on the source (issue 9; DESIGN.md "Which part may use which").

Imports are read from the syntax tree, `if TYPE_CHECKING:` ones included, so a type-only import
counts as an edge too: a cycle hidden behind TYPE_CHECKING is still a knot for a reader. SQL is
found as string literals that start with an SQL verb; every statement of the package lives in
`store/`. One pass over the files finds both, which is why this is not an import-linter contract.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spacechat_plugin"
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH|REPLACE)\s", re.S)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> Iterator[str]:
    """The package modules that `name` imports (a `from pkg import sub` names the submodule)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    yield f"{target}.{alias.name}"
                elif target in MODULES:
                    yield target


GRAPH = {name: set(imports(name)) - {name} for name in MODULES}


def cycles(graph: dict[str, set[str]] | None = None) -> list[list[str]]:
    """An import cycle, if there is one (graphlib finds one at a time: fix it and run again)."""
    try:
        TopologicalSorter(GRAPH if graph is None else graph).prepare()
    except CycleError as error:
        return [sorted(set(error.args[1]))]
    return []


def under(name: str, *folders: str) -> bool:
    return any(name == f"spacechat_plugin.{f}" or name.startswith(f"spacechat_plugin.{f}.") for f in folders)


def test_the_graph_sees_imports() -> None:
    # The checks below mean nothing if the parser finds no edges; these two must always hold.
    assert "spacechat_plugin.store.backend" in GRAPH["spacechat_plugin.app"]
    assert "spacechat_plugin.hookspecs" in GRAPH["spacechat_plugin.plugin"]


def test_no_import_cycle() -> None:
    assert cycles() == []


def test_contracts_import_nothing_of_the_package() -> None:
    for contract in ("hookspecs", "events", "errors"):
        assert GRAPH[f"spacechat_plugin.{contract}"] == set(), contract


def test_only_the_composition_root_imports_the_app() -> None:
    allowed = {"spacechat_plugin.plugin", "spacechat_plugin.cli"}
    importers = {name for name, deps in GRAPH.items() if "spacechat_plugin.app" in deps}
    assert importers <= allowed


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        # A host reaches the plugin only through hooks and the HostAPI: another host (the bridge,
        # Spacebot itself) must be able to replace it without touching anything else.
        (
            ("host",),
            (
                "api",
                "store",
                "app",
                "plugin",
                "realtime",
                "identity",
                "cards",
                "agents",
                "operations",
                "memory",
                "search",
            ),
        ),
        # The store and the bus are below every service.
        (
            ("store", "realtime"),
            ("api", "host", "app", "plugin", "identity", "cards", "agents", "operations", "sdk", "memory", "search"),
        ),
        # Services never reach up into routes or hosts.
        (("identity", "cards", "agents", "operations", "memory", "search"), ("api", "host", "app", "plugin")),
    ],
)
def test_imports_point_one_way(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{name} -> {dep}"
        for name, deps in GRAPH.items()
        if under(name, *layer)
        for dep in deps
        if under(dep, *forbidden)
    )
    assert wrong == []


def sql_literals(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
            yield node.lineno, node.value.strip().split("\n")[0][:60]


def test_sql_lives_in_the_store() -> None:
    outside = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for name, path in MODULES.items()
        if not under(name, "store")
        for line, text in sql_literals(path)
    ]
    assert outside == []


def test_hook_plugins_use_only_the_sdk() -> None:
    """Ready-made hook plugins (hooks/) are examples for plugin authors: they use the documented
    SDK (and the hook contract), never the store or a service."""
    allowed = {"spacechat_plugin.sdk", "spacechat_plugin.hookspecs", "spacechat_plugin.events"}
    for path in sorted((ROOT / "hooks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spacechat_plugin"):
                assert node.module in allowed, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("spacechat_plugin") or alias.name in allowed, path.name


def test_the_structure_test_catches_what_it_claims() -> None:
    # A test that cannot fail is a defect: feed the detectors a known knot and known SQL.
    assert SQL.match("SELECT id FROM messages") and SQL.match("\n  INSERT INTO x VALUES (?)")
    assert not SQL.match("Select a channel") and not SQL.match("selected")
    knot = {
        **GRAPH,
        "spacechat_plugin.errors": {"spacechat_plugin.events"},
        "spacechat_plugin.events": {"spacechat_plugin.errors"},
    }
    assert cycles(knot) == [["spacechat_plugin.errors", "spacechat_plugin.events"]]


def test_a_route_states_its_scope_once() -> None:
    """`@operation(scope=...)` checks the scope (api/common.py); a route that also calls
    `check(who, "<that scope>")` names it twice, and the two drift apart."""
    twice = []
    for name, path in MODULES.items():
        if not under(name, "api"):
            continue
        for fn in ast.parse(path.read_text()).body:
            if not isinstance(fn, ast.AsyncFunctionDef):
                continue
            scopes = [
                keyword.value.value
                for decorator in fn.decorator_list
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "operation"
                for keyword in decorator.keywords
                if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant)
            ]
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", "") == "check"
                    and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in scopes
                ):
                    twice.append(f"{path.name}: {fn.name}")
    assert twice == []
