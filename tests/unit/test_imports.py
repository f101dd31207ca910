"""The package's import arrows run one way: no cycle among jko_cli's modules, lazy imports included.

Every ``import`` / ``from … import`` of a jko_cli module is an edge, at module level or inside a function
(an import deferred into a function is still a dependency), except those under ``if TYPE_CHECKING:``.
Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` unless the importer lives inside ``a.b``, so that
package is an edge too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jko_cli

PACKAGE = Path(jko_cli.__file__).resolve().parent
ROOT = "jko_cli"


def module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "conf" in path.relative_to(PACKAGE).parts[:1]:
            continue
        found[module_name(path)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(tree: ast.AST, this: str, is_package: bool, known=frozenset()) -> set[str]:
    """Modules this module imports: ``from pkg import name`` is pkg.name where that is a module (``known``),
    else pkg (a name defined in pkg's ``__init__``)."""
    out: set[str] = set()

    def visit(node):
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = this.split(".") if is_package else this.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges = set()
        for target in imported_names(ast.parse(path.read_text()), name, path.name == "__init__.py", set(mods)):
            if target not in mods:
                continue
            edges.add(target)
            parts = target.split(".")
            for i in range(2, len(parts)):  # parent packages whose __init__ runs first
                parent = ".".join(parts[:i])
                if parent in mods and not (name == parent or name.startswith(parent + ".")):
                    edges.add(parent)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["jko_cli.models.potential"] = graph["jko_cli.models.potential"] | {"jko_cli.jko.flow"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"jko_cli.models.potential", "jko_cli.jko.flow"} <= set(cycle)


def test_lazy_and_parent_package_imports_are_edges():
    tree = ast.parse("def f():\n    from jko_cli.solvers.backends import native\n")
    names = imported_names(tree, "jko_cli.metrics", False, set(modules()))
    assert names == {"jko_cli.solvers.backends.native"}
    assert "jko_cli.solvers.backends" in import_graph()["jko_cli.metrics"]  # its __init__ runs first


def test_the_layers_point_one_way():
    """Lower layers never import higher ones: model ← solvers ← jko ← engine ← tasks ← cli."""
    graph = import_graph()
    order = ["jko_cli.models", "jko_cli.solvers", "jko_cli.matching", "jko_cli.jko", "jko_cli.engine", "jko_cli.tasks",
             "jko_cli.cli"]

    def layer(name: str) -> int | None:
        return next((i for i, p in enumerate(order) if name == p or name.startswith(p + ".")), None)

    upward = [(a, b) for a, targets in graph.items() for b in targets
              if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]
    assert not upward, f"imports against the layering: {upward}"


# side rooms: what each must not import (prefixes of module names)
FORBIDDEN = {
    "jko_cli.report": ("jko_cli.engine", "jko_cli.jko", "jko_cli.solvers", "jko_cli.tasks", "jko_cli.cli",
                       "jko_cli.tracking", "jko_cli.models", "jko_cli.data"),
    "jko_cli.run": ("jko_cli.engine", "jko_cli.tasks", "jko_cli.cli", "jko_cli.report", "jko_cli.tracking",
                    "jko_cli.jko"),
    "jko_cli.data": ("jko_cli.engine", "jko_cli.tasks", "jko_cli.cli", "jko_cli.report", "jko_cli.tracking",
                     "jko_cli.jko", "jko_cli.solvers", "jko_cli.models", "jko_cli.run", "jko_cli.metrics"),
    "jko_cli.models": ("jko_cli.engine", "jko_cli.tasks", "jko_cli.cli", "jko_cli.report", "jko_cli.tracking",
                       "jko_cli.jko", "jko_cli.solvers", "jko_cli.data", "jko_cli.run", "jko_cli.metrics"),
}


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_side_rooms_keep_to_themselves():
    graph = import_graph()
    bad = [(a, b) for a, targets in graph.items() for room, banned in FORBIDDEN.items() if _inside(a, room)
           for b in targets if any(_inside(b, p) for p in banned)]
    assert not bad, f"forbidden imports: {bad}"
