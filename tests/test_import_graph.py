"""The import graph of ``src/mmeperf``: no cycles, and every edge points down the layer order.

Every import counts: top-level, lazy (inside functions) and ``TYPE_CHECKING`` alike, because a
lazy edge is still a dependency a newcomer must understand. The package's own ``__init__`` is a
curated facade that names everything lazily, so edges from ``mmeperf`` itself to its children
are not design edges; a package re-exporting its own children is not either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mmeperf

SRC = Path(mmeperf.__file__).resolve().parent

# Later layers may import earlier ones (and their own layer, without cycles), never the reverse.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "_types", "_files", "_deps", "units", "metrics", "instances", "advice"),
    ("plugins",),
    ("backends", "sample_models", "cloud"),
    ("exporters",),
    ("repository",),
    ("datasets", "protocol"),
    ("endpoints",),
    ("load",),
    ("results",),
    ("planner",),
    ("demos", "cli", "testing", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _modules(src: Path) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the modules of the package at ``src`` it imports, counting every import."""
    root = src.name
    modules = _modules(src)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if target.split(".")[0] != root:
                    continue
                resolved = _resolve(target, modules)
                if resolved and resolved != module and not resolved.startswith(module + "."):
                    edges[module].add(resolved)
    # The root facade names everything lazily; it is not a layer.
    edges[root] = set()
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(
        {_layer(m) for m in import_graph() if m != "mmeperf" and _layer(m) not in RANK}
    )
    assert unplaced == [], f"place these in LAYERS: {unplaced}"


def test_no_import_cycles() -> None:
    assert _cycles(import_graph()) == []


def test_imports_point_down_the_layers() -> None:
    backward = sorted(
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if a != "mmeperf" and RANK.get(_layer(b), -1) > RANK.get(_layer(a), 99)
    )
    assert backward == []


def test_the_check_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The walker counts imports inside functions and under TYPE_CHECKING, relative ones too."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.sub import c\n"
        "def f():\n    import pkg.b\n"
    )
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "sub" / "c.py").write_text("from ..b import f\n")
    edges = import_graph(pkg)
    assert edges["pkg.a"] == {"pkg.sub", "pkg.sub.c", "pkg.b"}
    assert edges["pkg.sub.c"] == {"pkg.b"}
    assert _cycles(edges) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


@pytest.mark.parametrize("forbidden", ["locust", "gevent"])
def test_only_the_locustfile_imports_locust(forbidden: str) -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "locustfile.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(
                a.name.split(".")[0] == forbidden for a in node.names
            ):
                offenders.append(str(path.relative_to(SRC)))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == forbidden:
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
