"""The dependency rules of the architecture, read from the code's own imports (module-level and inside functions):
entry points → composition → core ← adapters; no import circles between modules or between packages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "shared" / "mmrag"

# package → the packages it may import (besides itself and the leaf utilities below)
LEAVES = {"mmrag", "mmrag.errors", "mmrag.settings", "mmrag.text", "mmrag.security"}
ALLOWED = {
    "mmrag.core": {"mmrag.ingest"},
    "mmrag.ingest": set(),
    "mmrag.adapters": {"mmrag.core", "mmrag.ingest"},
    "mmrag.composition": {"mmrag.core", "mmrag.adapters", "mmrag.ingest"},
    "mmrag.api": {"mmrag.core", "mmrag.composition", "mmrag.ingest"},
    "mmrag.lambda_handlers": {"mmrag.api", "mmrag.core", "mmrag.composition", "mmrag.adapters", "mmrag.ingest"},
    "mmrag.cli": {"mmrag.api", "mmrag.core", "mmrag.composition", "mmrag.adapters", "mmrag.ingest"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every mmrag module `path` imports, wherever the import statement sits."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mmrag")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mmrag"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # keep only targets that are modules (an imported name resolves to its module)
        edges[name] = {t for t in imports_of(path) if t in modules and t != name}
    return edges


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_between_modules():
    assert cycles(graph()) == []


def test_no_import_circles_between_packages():
    edges = graph()
    packages: dict[str, set[str]] = {}
    for src, targets in edges.items():
        packages.setdefault(package_of(src), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(src)
        )
    assert cycles(packages) == []


def test_each_package_imports_only_what_its_layer_may():
    wrong = []
    for src, targets in graph().items():
        src_pkg = package_of(src)
        if src_pkg in LEAVES or src_pkg == "mmrag":
            continue
        allowed = ALLOWED.get(src_pkg)
        assert allowed is not None, f"{src_pkg} has no place in the layering rules of this test"
        for t in targets:
            t_pkg = package_of(t)
            if t_pkg != src_pkg and t_pkg not in LEAVES and t_pkg not in allowed:
                wrong.append(f"{src} -> {t}")
    assert wrong == []


def test_leaves_import_no_layer():
    wrong = [
        f"{src} -> {t}"
        for src, targets in graph().items()
        if package_of(src) in LEAVES
        for t in targets
        if package_of(t) not in LEAVES
    ]
    assert wrong == []
