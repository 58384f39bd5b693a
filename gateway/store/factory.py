"""Open the configured store: SQLite by default, PostgreSQL for a postgres URL."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.postgres import ACQUIRE_TIMEOUT, STATEMENT_TIMEOUT, PostgresStore
from gateway.store.sqlite import CACHE_BYTES, MIN_FREE_BYTES, SqliteStore

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """PostgreSQL's statement and pool-acquisition timeouts (seconds), the free space
    SQLite's readiness asks of the file's filesystem and SQLite's page cache (bytes);
    docs/operations.md."""

    statement_timeout: float = STATEMENT_TIMEOUT
    acquire_timeout: float = ACQUIRE_TIMEOUT
    min_free_bytes: int = MIN_FREE_BYTES
    sqlite_cache_bytes: int = CACHE_BYTES


def make_store(database_url: str | None, *, sqlite_path: str, schema: str | None = None,
               limits: StoreLimits | None = None) -> SqliteStore | PostgresStore:
    """The (unopened) store for `database_url`.

    None / "" -> SqliteStore(sqlite_path); "sqlite:///<path>" -> SqliteStore(<path>)
    ("sqlite:////abs/path" for an absolute path, "sqlite:///:memory:" in memory);
    "postgresql://..." / "postgres://..." -> PostgresStore(url, schema=schema).
    """
    lim = limits or StoreLimits()
    if not database_url:
        return SqliteStore(sqlite_path, min_free_bytes=lim.min_free_bytes, cache_bytes=lim.sqlite_cache_bytes)
    if database_url.startswith(_SQLITE_PREFIX):
        path = database_url[len(_SQLITE_PREFIX) :]
        if not path:
            raise ValueError("sqlite URL without a path; use sqlite:///relative or sqlite:////absolute")
        return SqliteStore(path, min_free_bytes=lim.min_free_bytes, cache_bytes=lim.sqlite_cache_bytes)
    if database_url.startswith(_POSTGRES_PREFIXES):
        return PostgresStore(database_url, schema=schema, statement_timeout=lim.statement_timeout,
                             acquire_timeout=lim.acquire_timeout)
    scheme = database_url.split(":", 1)[0]
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


async def open_store(
    database_url: str | None, *, sqlite_path: str, schema: str | None = None, limits: StoreLimits | None = None,
) -> SqliteStore | PostgresStore:
    """Open and migrate the store for `database_url` (see `make_store`)."""
    store = make_store(database_url, sqlite_path=sqlite_path, schema=schema, limits=limits)
    await store.open()
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
