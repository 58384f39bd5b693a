"""Stores for tests that need one backend directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.store.sqlite import SqliteStore


async def open_sqlite(path: Path, **kw: Any) -> SqliteStore:
    """An opened and migrated SQLite store on the file at `path` (`SqliteStore`'s options)."""
    store = SqliteStore(str(path), **kw)
    await store.open()
    await store.migrate()
    return store
