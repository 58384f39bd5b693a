"""The package-level import graph (scripts/import_graph.py, read with `ast`): no cycles between
packages, and the core imports no feature. Every import counts — at the top of a module,
inside functions and inside `if TYPE_CHECKING:` blocks (see the script's docstring). The
layers (core, features, composition root) are written in docs/architecture.md."""

from __future__ import annotations

from pathlib import Path

from scripts.import_graph import (
    COMPOSITION_ROOT,
    FEATURES,
    ROOT,
    core_to_feature,
    cycles,
    import_sites,
    layer,
    package_graph,
)


def test_no_import_cycles_between_packages() -> None:
    graph = package_graph()
    assert len(graph) > 20  # the tree was read
    found = cycles(graph)
    sites = import_sites()
    assert not found, [(c, {e: sites[e] for e in sites if e[0] in c and e[1] in c}) for c in found]


def test_the_core_imports_no_feature() -> None:
    graph = package_graph()
    bad = core_to_feature(graph)
    sites = import_sites()
    assert not bad, {edge: sites[edge] for edge in bad}


def test_features_and_composition_root_exist_and_are_used() -> None:
    """The layer lists name real packages, and only the composition root imports every feature."""
    graph = package_graph()
    assert set(graph) >= FEATURES and set(graph) >= COMPOSITION_ROOT
    assert FEATURES - {"recording"} <= graph["gateway.composition"]  # recording: a library of calls
    assert "gateway.extension" in graph["gateway.app"]


def test_gateway_root_keeps_at_most_eight_modules() -> None:
    modules = sorted(p.name for p in (ROOT / "gateway").glob("*.py"))
    assert len(modules) <= 8, modules


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checks_see_hidden_imports(tmp_path: Path) -> None:
    """A cycle made by an import inside a function, and a core→feature import inside a
    TYPE_CHECKING block, are both found (the test can fail)."""
    _write(tmp_path, {
        "gateway/__init__.py": "",
        "gateway/chat/__init__.py": "",
        "gateway/chat/service.py": "from typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    from gateway.calls.service import CallService\n",
        "gateway/calls/__init__.py": "",
        "gateway/calls/service.py": "from gateway.chat import service\n",
        "gateway/store/__init__.py": "def f():\n    from ..realtime import fanout\n",
        "gateway/realtime/__init__.py": "",
        "gateway/realtime/fanout.py": "from gateway.store import f\n",
        "connectors/__init__.py": "",
        "recording/__init__.py": "",
    })
    graph = package_graph(tmp_path)
    assert graph["gateway.store"] == {"gateway.realtime"} and graph["gateway.realtime"] == {"gateway.store"}
    assert cycles(graph) == [["gateway.calls", "gateway.chat"], ["gateway.realtime", "gateway.store"]]
    assert core_to_feature(graph) == [("gateway.chat", "gateway.calls")]
    assert layer("gateway.cli") == "composition root" and layer("gateway.chat") == "core"
