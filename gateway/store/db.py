"""`Database`: raw SQL access for feature stores (calls, connectors, uploads, …).

A feature keeps its own tables (its own numbered migration files in
gateway/store/migrations/) and its own small store class built on this protocol, so it
does not grow the core `Store`. Statements use `$n` placeholders and the portable SQL
subset described in gateway/store/sql.py; both backends run them.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from gateway.store.base import Store
from gateway.store.sql import Conn


class Database(Protocol):
    def reader(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for one or more reads."""

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A connection in a transaction: commits on success, rolls back on error, and
        raises `gateway.store.sql.Conflict` on a unique-constraint violation."""

    @property
    def row_lock(self) -> str:
        """Suffix that row-locks a SELECT inside `transaction()` ('' on SQLite)."""


class StoreDatabase(Store, Database, Protocol):
    """An opened store that is both the core `Store` and the `Database` the features keep
    their tables on (`SqliteStore` and `PostgresStore` are): what a feature's CLI command
    and a repository's contract suite get."""
