"""The product's import graph: no cycles, layers that point one way, and imports inside
functions only where a dependency is optional.

Every module of `src/privatepuller` is parsed (not imported); each `import` and `from … import`,
at module level or inside a function, becomes an edge, relative imports resolved. The fakes under
`privatepuller.testing` are test infrastructure and left out.

    errors, sizes, targets          anyone
    http/                           errors, sizes
    credentials/                    http/, errors
    sync/                           http/ (its defaults), errors, sizes
    providers/<name>/, base         http/, credentials/, sync/'s contract with sources (source,
                                    names, progress, config, store; bundle for snapshots made
                                    elsewhere), each other provider never
    providers/__init__              its providers
    providers/repoproviders         the adapter: providers, pull, sync/config and sync/store
    pull                            providers, credentials, sync, targets
    server/, cli, console, demo     pull and providers/ (never a provider's own package)
    hub/                            credentials/, http/, providers/, pull, sync/
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import privatepuller

SRC = Path(privatepuller.__file__).parent
PACKAGE = "privatepuller"

# Imports inside functions, each for a reason: the dependency is optional where it is used.
FUNCTION_LEVEL_IMPORTS = {
    # google-auth is needed only with a service-account key file; it takes ~0.1 s to import.
    ("privatepuller.credentials.service_account", "google.auth.exceptions"),
    ("privatepuller.credentials.service_account", "google.auth.transport.requests"),
    ("privatepuller.credentials.service_account", "google.oauth2"),
    # The fakes are test infrastructure that only `privatepuller demo` runs.
    ("privatepuller.demo", "privatepuller.testing.canvas"),
    ("privatepuller.demo", "privatepuller.testing.drive"),
    # The handlers subclass nbgitpuller's base handler, which is chosen when the extension
    # loads (nbgitpuller._compat.get_base_handler), exactly as nbgitpuller's own extension does.
    ("privatepuller.server.extension", "privatepuller.server.handlers"),
    ("privatepuller.server.extension", "privatepuller.server.link_builder"),
}
MAX_FUNCTION_LEVEL_IMPORTS = len(FUNCTION_LEVEL_IMPORTS)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    in_function: bool
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path
    for path in sorted(SRC.rglob("*.py"))
    if "testing" not in path.relative_to(SRC).parts
}
ALL_MODULES = {module_name(path) for path in SRC.rglob("*.py")}


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it sits inside a function."""

    def walk(
        node: ast.AST, in_function: bool
    ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from walk(child, inside)

    yield from walk(tree, False)


def edges_of(name: str, path: Path) -> Iterator[Edge]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node, in_function in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(name, alias.name, in_function, node.lineno)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        targets = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in ALL_MODULES]
        if len(targets) < len(node.names):  # names from the module itself, not submodules
            targets.append(module)
        for target in targets:
            yield Edge(name, target, in_function, node.lineno)


EDGES = [edge for name, path in MODULES.items() for edge in edges_of(name, path)]
PRODUCT_EDGES = [e for e in EDGES if e.target in MODULES]


def graph() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {name: set() for name in MODULES}
    for edge in PRODUCT_EDGES:
        found[edge.source].add(edge.target)
    return found


def cycles(nodes: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself),
    by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(nodes[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in nodes[node]:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def within(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def pp(*names: str) -> tuple[str, ...]:
    return tuple(f"{PACKAGE}.{name}" for name in names)


def violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{e.source}:{e.line} imports {e.target}"
        for e in PRODUCT_EDGES
        if within(e.source, *sources) and within(e.target, *forbidden)
    ]


def test_the_graph_sees_every_product_module_and_relative_import() -> None:
    assert len(MODULES) > 60
    assert Edge("privatepuller.pull", "privatepuller.providers", False, 0).target in {
        e.target for e in EDGES if e.source == "privatepuller.pull"
    }
    unresolved = [
        f"{e.source}:{e.line} {e.target}"
        for e in EDGES
        if e.target.startswith(PACKAGE) and e.target not in ALL_MODULES
    ]
    assert unresolved == []


def test_no_import_cycles_among_product_modules() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (
            pp("http"),
            pp("credentials", "providers", "sync", "server", "hub", "pull", "cli", "console")
            + pp("demo", "link", "targets"),
        ),
        (
            pp("credentials"),
            pp("providers", "sync", "server", "hub", "pull", "cli", "console", "demo", "link"),
        ),
        (
            pp("sync"),
            pp("providers", "credentials", "server", "hub", "pull", "cli", "console", "demo")
            + pp("link"),
        ),
        # The hub's service is a caller of the pull path (resolve, open), like the server.
        (pp("hub"), pp("server", "cli", "console", "demo", "link")),
        (pp("server"), pp("hub", "cli", "console", "demo")),
        (pp("cli", "console", "demo"), pp("server", "hub")),
    ],
)
def test_layers_point_one_way(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert violations(layer, forbidden) == []


PROVIDER_PACKAGES = pp("providers.canvas", "providers.gdrive")


def test_providers_import_no_caller_and_no_other_provider() -> None:
    providers = (*PROVIDER_PACKAGES, *pp("providers.base"))
    assert violations(providers, pp("server", "hub", "pull", "cli", "console", "demo")) == []
    assert violations(pp("providers.canvas"), pp("providers.gdrive")) == []
    assert violations(pp("providers.gdrive"), pp("providers.canvas")) == []
    # From the engine, only what a provider gives it and how it names files; a source whose
    # snapshot is made elsewhere (Drive through the hub) gives it a stored snapshot, through
    # the engine's own step for that (sync/bundle.store_fetched).
    engine = [
        e for e in PRODUCT_EDGES if within(e.source, *providers) and within(e.target, *pp("sync"))
    ]
    contract = pp("sync.source", "sync.names", "sync.progress", "sync.config", "sync.store")
    allowed = {*contract, *pp("sync.bundle")}
    assert {e.target for e in engine} <= allowed, engine
    # The repoproviders adapter goes through pull.py, like every other caller.
    assert violations(pp("providers.repoproviders"), pp("server", "hub", "cli", "demo")) == []


def test_the_server_and_the_cli_go_through_pull_and_the_provider_list() -> None:
    callers = pp("server", "cli", "console", "demo", "link", "pull")
    assert violations(callers, PROVIDER_PACKAGES) == []


def test_http_knows_no_provider() -> None:
    words = ("canvas", "google", "drive")
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in (SRC / "http").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(word in line.lower() for word in words)
    ]
    assert found == []


def test_imports_inside_functions_only_where_a_dependency_is_optional() -> None:
    inside = {(e.source, e.target) for e in EDGES if e.in_function}
    assert inside == FUNCTION_LEVEL_IMPORTS
    assert sum(1 for e in EDGES if e.in_function) <= MAX_FUNCTION_LEVEL_IMPORTS
