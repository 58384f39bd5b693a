"""Numbered SQL migrations shared by every backend.

Files live next to this module in ``migrations/`` and are named ``NNNN_description.sql``;
the number is the version. A migration one engine runs differently (full-text search: FTS5
on SQLite, a GIN index on PostgreSQL) is two files of one version,
``NNNN_description.sqlite.sql`` and ``NNNN_description.postgres.sql``; each store applies
the shared files and its own dialect's (`for_dialect`). A statement ends with a line whose last character is ``;``
(so a ``;`` inside a line never splits), and lines starting with ``--`` are comments.
The runners (`SqlStore.migrate`) record applied versions in ``schema_migrations``.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import NamedTuple

_FILE_RE = re.compile(r"^(\d+)_[A-Za-z0-9_.-]+?(?:\.(sqlite|postgres))?\.sql$")
DIALECTS = ("sqlite", "postgres")


class Migration(NamedTuple):
    version: int
    statements: tuple[str, ...]
    dialect: str | None = None  # None: both engines run it


def for_dialect(migrations: list[Migration], dialect: str) -> list[Migration]:
    """The migrations an engine runs: the shared ones and those of its `dialect`."""
    return [m for m in migrations if m.dialect in (None, dialect)]


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
    """All migrations of `directory` (default: the packaged one), ascending by version (a
    version of two dialect files: postgres', then sqlite's). A version is either one shared
    file or one file per dialect of `DIALECTS`, each at most once."""
    found: dict[tuple[int, str | None], Migration] = {}
    for entry in (directory or migrations_dir()).iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        version, dialect = int(match.group(1)), match.group(2)
        taken = [key for key in found if key[0] == version and (dialect is None or key[1] in (None, dialect))]
        if taken or (dialect is not None and (version, None) in found):
            raise ValueError(f"duplicate migration version {version}")
        found[version, dialect] = Migration(version, split_statements(entry.read_text(encoding="utf-8")), dialect)
    return [found[k] for k in sorted(found, key=lambda k: (k[0], k[1] or ""))]
