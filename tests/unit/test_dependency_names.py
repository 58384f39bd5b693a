"""No private names of our dependencies: the server's code (gateway/, connectors/,
recording/) never imports python-socketio or python-engineio, never imports an underscore
name or module of another package, and never reads an underscore attribute that our own
code does not define — also when the name reaches getattr/setattr/hasattr through a module
constant. The exceptions are listed in docs/architecture.md ("Names of dependencies we rely
on") and in `LISTED` below, each with a test of its own."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "connectors", "recording")
OURS = set(PACKAGES) | {"tests", "bench"}
# underscore names of the standard library (not a dependency) that our code reads
STDLIB = {"_current_frames": "sys (documented)", "_value2member_map_": "enum's value map",
          "_SubParsersAction": "argparse: the type add_subparsers returns"}
# the exceptions docs/architecture.md lists ("Names of dependencies we rely on"), each with
# the test that fails when the dependency changes it
LISTED = {
    "_RTCRtpReceiver__decoder_queue":
        "aiortc: tests/calls/test_units.py::test_aiortc_still_has_the_decoder_queue_we_replace",
    "_send_rtp": "aiortc: tests/calls/test_rtpsend.py::test_aiortc_sends_what_the_direct_sender_writes",
}


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _modules() -> list[tuple[Path, ast.Module]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out.append((path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in OURS and top not in sys.stdlib_module_names


def test_the_server_does_not_use_python_socketio_or_engineio() -> None:
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("socketio", "engineio")]
    assert not found, found


def _third_party_aliases(tree: ast.Module) -> set[str]:
    """Names a module binds to other packages' modules and objects (`import aiohttp`,
    `from aiohttp import web`)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names if _third_party(a.name)}
        elif isinstance(node, ast.ImportFrom) and node.module and _third_party(node.module):
            out |= {a.asname or a.name for a in node.names}
    return out


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _defined(modules: list[tuple[Path, ast.Module]]) -> set[str]:
    """Underscore names our own code defines: functions, classes, module names, `self.x`
    attributes and `__slots__` entries, except the methods of classes that subclass another
    package's class (overriding its private methods is using them)."""
    defined: set[str] = set()
    for _, tree in modules:
        aliases = _third_party_aliases(tree)
        foreign_methods: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(_root(b) in aliases for b in node.bases):
                foreign_methods |= {id(f) for f in node.body if isinstance(f, FUNCTIONS)}
        for node in ast.walk(tree):
            if (isinstance(node, FUNCTIONS) and id(node) not in foreign_methods) or isinstance(node, ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                defined.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                      for t in node.targets):
                defined |= {c.value for c in ast.walk(node.value)
                            if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return defined


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """A module's top-level `NAME = "text"` assignments (a name passed to getattr through one)."""
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


def test_no_underscore_names_of_other_packages() -> None:
    modules = _modules()
    defined = _defined(modules) | STDLIB.keys() | LISTED.keys()
    problems = []
    for path, tree in modules:
        where = path.relative_to(ROOT)
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and _third_party(node.module):
                if any(_private(part) for part in node.module.split(".")):
                    problems.append(f"{where}:{node.lineno}: from {node.module} import …")
                problems += [f"{where}:{node.lineno}: from {node.module} import {a.name}"
                             for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Import):
                problems += [f"{where}:{node.lineno}: import {a.name}" for a in node.names
                             if _third_party(a.name) and any(_private(p) for p in a.name.split("."))]
            elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in defined:
                problems.append(f"{where}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
                arg = node.args[1]
                name = arg.value if isinstance(arg, ast.Constant) else \
                    constants.get(arg.id) if isinstance(arg, ast.Name) else None
                if isinstance(name, str) and _private(name) and name not in defined:
                    problems.append(f"{where}:{node.lineno}: {node.func.id}(…, {name!r})")
    assert not problems, "private names of dependencies:\n" + "\n".join(problems)


def test_no_file_response() -> None:
    """aiohttp's FileResponse needs a transport with native sendfile, which connections
    served through gateway.edge.listen.EdgeSite do not offer (it would fail at run time):
    file bodies go through gateway.http.files.file_response."""
    found = [f"{path.relative_to(ROOT)}:{node.lineno}" for path, tree in _modules() for node in ast.walk(tree)
             if (isinstance(node, ast.Attribute) and node.attr == "FileResponse")
             or (isinstance(node, ast.Name) and node.id == "FileResponse")]
    assert not found, found
