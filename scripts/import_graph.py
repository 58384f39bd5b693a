"""The package-level import graph of gateway/, connectors/ and recording/, read with `ast`.

`python scripts/import_graph.py` prints it as a mermaid diagram, its transitive reduction
(`--all-edges`: every edge; docs/architecture.md keeps the output); `--check` prints the
cycles and the core→feature imports and exits 1 if any.
tests/unit/test_import_graph.py runs the same checks.

What counts as an import: every `import` and `from … import` anywhere in a module — at the
top, inside functions, and inside `if TYPE_CHECKING:` blocks. A function-level import is a
run-time dependency hidden from the top of the file, and a TYPE_CHECKING import is a design
dependency (the module names the other's types): both would let a cycle or a core→feature
dependency in unseen, so both count.

The unit of the graph (a "package"): each sub-package of `gateway` (`gateway.realtime`,
`gateway.calls`, …), each module at the root of `gateway` (`gateway.app`, `gateway.cli`,
`gateway.config`, …), and the top-level packages `connectors` and `recording` as a whole
(their sub-packages, the channels, are parts of one feature).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_PACKAGES = ("gateway", "connectors", "recording")

# The features: packages the core never imports. Everything else under gateway/ is the core,
# except the composition root, which chooses the features a node runs and may import anything.
FEATURES = frozenset({
    "gateway.admission", "gateway.calls", "gateway.desk", "gateway.privacy", "gateway.ratings", "gateway.search",
    "gateway.widget", "connectors",
    "recording",
})
COMPOSITION_ROOT = frozenset({"gateway.cli", "gateway.__main__", "gateway.composition"})


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str, root: Path = ROOT) -> str:
    """The graph's unit holding `module` (see the module docstring)."""
    parts = module.split(".")
    if parts[0] != "gateway" or len(parts) == 1:
        return parts[0]
    return f"gateway.{parts[1]}"


def modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    for top in TOP_PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            yield module_name(path, root), path


def imported_modules(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """The project modules `module` imports (absolute names), anywhere in its file."""
    known = set(known)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # `from gateway.realtime import server`: a module imported from its package
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    return {m for m in found if m.split(".")[0] in TOP_PACKAGES}


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    found = dict(modules(root))
    return {name: imported_modules(name, path, found) for name, path in found.items()}


def package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """package → the packages it imports (itself left out)."""
    graph: dict[str, set[str]] = {}
    for mod, targets in module_graph(root).items():
        src = package_of(mod, root)
        deps = graph.setdefault(src, set())
        deps.update(package_of(t, root) for t in targets)
        deps.discard(src)
    return graph


def import_sites(root: Path = ROOT) -> dict[tuple[str, str], list[str]]:
    """(package, package) → 'module -> module' lines: where each edge comes from."""
    sites: dict[tuple[str, str], list[str]] = {}
    for mod, targets in module_graph(root).items():
        for t in sorted(targets):
            edge = (package_of(mod, root), package_of(t, root))
            if edge[0] != edge[1]:
                sites.setdefault(edge, []).append(f"{mod} -> {t}")
    return sites


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def layer(package: str) -> str:
    if package in COMPOSITION_ROOT:
        return "composition root"
    if package in FEATURES:
        return "feature"
    return "core"


def core_to_feature(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    return sorted((src, dst) for src, deps in graph.items() for dst in deps
                  if layer(src) == "core" and layer(dst) == "feature")


def reachable(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(graph.get(p, ()))
    return seen


def reduced(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The transitive reduction of an acyclic `graph`: an edge a → c is left out when a
    reaches c through another package (a → b → … → c); every dependency stays readable as
    a path."""
    out: dict[str, set[str]] = {}
    for a, deps in graph.items():
        direct = set(deps)
        through = set().union(*(reachable(graph, b) for b in direct)) if direct else set()
        out[a] = direct - through
    return out


def mermaid(graph: Mapping[str, Iterable[str]]) -> str:
    """`graph` as a mermaid flowchart, one subgraph per layer."""
    ident = {p: p.replace(".", "_").replace("__", "") for p in graph}
    lines = ["flowchart TD"]
    for name in ("composition root", "feature", "core"):
        members = sorted(p for p in graph if layer(p) == name)
        lines.append(f'  subgraph {name.replace(" ", "_")}["{name}"]')
        lines.extend(f'    {ident[p]}["{p}"]' for p in members)
        lines.append("  end")
    for src in sorted(graph):
        lines.extend(f"  {ident[src]} --> {ident[dst]}" for dst in sorted(graph[src]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`[--check] [--root DIR]`: DIR is a source tree (default: this one), e.g. an older
    commit's (`git archive <commit> | tar -x -C DIR`)."""
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else ROOT
    graph = package_graph(root)
    if "--check" in argv:
        sites = import_sites(root)
        bad = 0
        for component in cycles(graph):
            bad += 1
            print("cycle:", " ↔ ".join(component))
            for (a, b), lines in sorted(sites.items()):
                if a in component and b in component:
                    print(f"    {a} -> {b}: {lines[0]}" + (f" (+{len(lines) - 1})" if len(lines) > 1 else ""))
        for src, dst in core_to_feature(graph):
            bad += 1
            print(f"core imports a feature: {src} -> {dst}:", *sites[(src, dst)], sep="\n    ")
        return 1 if bad else 0
    print(mermaid(graph if "--all-edges" in argv or cycles(graph) else reduced(graph)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
