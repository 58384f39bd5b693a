"""Numbered SQL migrations shared by every backend.

Files live next to this module in ``migrations/`` and are named ``NNNN_description.sql``;
the number is the version. A statement ends with a line whose last character is ``;``
(so a ``;`` inside a line never splits), and lines starting with ``--`` are comments.
The runners (`SqlStore.migrate`) record applied versions in ``schema_migrations``.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import NamedTuple

_FILE_RE = re.compile(r"^(\d+)_[A-Za-z0-9_.-]+\.sql$")


class Migration(NamedTuple):
    version: int
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """Split a script into statements on lines ending with ';' (comment lines dropped)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line.rstrip())
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip()[:-1].rstrip())
            current = []
    if current:
        raise ValueError(f"unterminated SQL statement: {' '.join(current)[:80]!r}")
    return tuple(s for s in statements if s)


def migrations_dir() -> Traversable:
    return resources.files(__package__ or "gateway.store").joinpath("migrations")


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """All migrations of `directory` (default: the packaged one), ascending by version."""
    found: dict[int, Migration] = {}
    for entry in (directory or migrations_dir()).iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"duplicate migration version {version}")
        found[version] = Migration(version, split_statements(entry.read_text(encoding="utf-8")))
    return [found[v] for v in sorted(found)]
