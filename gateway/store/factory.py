"""Open the configured store: SQLite by default, PostgreSQL for a postgres URL."""

from __future__ import annotations

from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def make_store(database_url: str | None, *, sqlite_path: str, schema: str | None = None) -> SqliteStore | PostgresStore:
    """The (unopened) store for `database_url`.

    None / "" -> SqliteStore(sqlite_path); "sqlite:///<path>" -> SqliteStore(<path>)
    ("sqlite:////abs/path" for an absolute path, "sqlite:///:memory:" in memory);
    "postgresql://..." / "postgres://..." -> PostgresStore(url, schema=schema).
    """
    if not database_url:
        return SqliteStore(sqlite_path)
    if database_url.startswith(_SQLITE_PREFIX):
        path = database_url[len(_SQLITE_PREFIX) :]
        if not path:
            raise ValueError("sqlite URL without a path; use sqlite:///relative or sqlite:////absolute")
        return SqliteStore(path)
    if database_url.startswith(_POSTGRES_PREFIXES):
        return PostgresStore(database_url, schema=schema)
    scheme = database_url.split(":", 1)[0]
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


async def open_store(
    database_url: str | None, *, sqlite_path: str, schema: str | None = None,
) -> SqliteStore | PostgresStore:
    """Open and migrate the store for `database_url` (see `make_store`)."""
    store = make_store(database_url, sqlite_path=sqlite_path, schema=schema)
    await store.open()
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
