"""Imports go one way: tui -> labctl -> sim -> faults, nodes -> protocols, with the CLI
(labctl/cli/) on top, the one place that knows both labctl and the dashboard. And no
module imports a module that imports it back.

Every import counts, wherever it is written: at the top of a module, inside a function
(a lazy import is still a dependency), under `if TYPE_CHECKING:` (a type is one too). The
modules are read with `ast`, not imported, so nothing runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tui", "labctl", "sim", "faults", "nodes", "protocols")

# The layers, top down; a module may import from its own layer and the layers below.
# The CLI sits above the dashboard: `labctl up` and `labctl dash` launch it, so
# labctl/cli -> tui is the one import that goes from labctl up to tui; nothing else in
# labctl may import the CLI or the dashboard. faults/ and nodes/ are one layer: the
# router is a process like the nodes (nodes.process), and a replica validates a clock or
# disk fault with the fault vocabulary (faults.model).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("labctl.cli",),
    ("tui",),
    ("labctl",),
    ("sim",),
    ("faults", "nodes"),
    ("protocols",),
)
RANK = {layer: len(LAYERS) - i for i, group in enumerate(LAYERS) for layer in group}

# Import cycles allowed: none. (The epaxos and pbft mixins that imported their core back
# are gone, issue 17.) The test below fails if a listed cycle no longer exists, so the
# list can only shrink.
ALLOWED_CYCLES: dict[str, frozenset[str]] = {}


def modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything `tree` imports, anywhere in it. For `from a import
    b`, both `a` and `a.b` (b may be a module); relative imports made absolute."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that `name` is or lives in (None: not ours)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def layer(module: str) -> str:
    return "labctl.cli" if module.startswith("labctl.cli") else module.split(".")[0]


def graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """module -> the modules of ours it imports, and the first line of each import."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    lines: dict[tuple[str, str], int] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for line, name in imported_names(tree, module, path.name == "__init__.py"):
            target = resolve(name, known)
            if target is not None and target != module:
                edges[module].add(target)
                lines.setdefault((module, target), line)
    return edges, lines


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_scan_sees_every_kind_of_import() -> None:
    source = (
        "from __future__ import annotations\n"
        "import labctl.api\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tui.app import LabApp\n"
        "def f():\n    from . import sibling\n    import nodes.client as c\n"
        "class K:\n    def m(self):\n        from ..base import wire\n"
    )
    names = {n for _, n in imported_names(ast.parse(source), "protocols.raft.core", False)}
    assert {"labctl.api", "tui.app", "tui.app.LabApp", "protocols.raft.sibling",
            "nodes.client", "protocols.base.wire"} <= names  # fmt: skip
    edges, _ = graph()
    assert len(edges) > 150 and sum(map(len, edges.values())) > 400  # the whole house


def test_imports_go_down_the_layers() -> None:
    edges, lines = graph()
    known = modules()
    wrong = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            src, dst = layer(module), layer(target)
            if RANK[dst] > RANK[src]:
                where = known[module].relative_to(ROOT)
                wrong.append(f"{where}:{lines[module, target]}: {module} imports {target} "
                             f"({src} -> {dst} goes up)")  # fmt: skip
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    edges, _ = graph()
    found = cycles(edges)
    allowed = set().union(*ALLOWED_CYCLES.values())
    bad = [c for c in found if not set(c) <= allowed]
    assert not bad, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in bad)
    for package, names in ALLOWED_CYCLES.items():
        assert all(n.startswith(package + ".") for n in names)
        assert package in ("protocols.epaxos", "protocols.pbft")
    # The allow-list only shrinks: a cycle taken apart leaves the list with it.
    in_cycles = {m for c in found for m in c}
    gone = sorted(allowed - in_cycles)
    assert not gone, f"no longer in a cycle, remove from ALLOWED_CYCLES: {', '.join(gone)}"


def test_labctl_reaches_the_dashboard_only_from_the_cli() -> None:
    """The rule the layers encode, said the way a reader looks for it: nothing outside
    labctl/cli/ imports tui, and the dashboard never imports the CLI."""
    edges, _ = graph()
    into_tui = sorted(m for m, ts in edges.items() if layer(m) not in ("tui", "labctl.cli")
                      and any(layer(t) == "tui" for t in ts))  # fmt: skip
    into_cli = sorted(m for m, ts in edges.items() if layer(m) != "labctl.cli"
                      and any(layer(t) == "labctl.cli" for t in ts))  # fmt: skip
    assert into_tui == [] and into_cli == []
