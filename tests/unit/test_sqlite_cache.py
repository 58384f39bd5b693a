"""The SQLite page cache of the node's connection is bounded by `SQLITE_CACHE_MB`
(default 8 MiB): the cache holds the pages the writes touched, so its bound is what the
node's memory grows to under a steady write load (docs/performance.md, the soak)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.store.factory import StoreLimits, make_store
from gateway.store.sqlite import CACHE_BYTES, SqliteStore


async def _cache_size(store: SqliteStore) -> int:
    await store.open()
    try:
        async with store.reader() as conn:
            row = await conn.fetchrow("PRAGMA cache_size")
        assert row is not None
        return int(row["cache_size"])
    finally:
        await store.close()


async def test_default_page_cache_is_8_mib(tmp_path: Path) -> None:
    assert CACHE_BYTES == 8 * 1024 * 1024
    assert await _cache_size(SqliteStore(str(tmp_path / "a.sqlite3"))) == -8192  # KiB


async def test_configured_page_cache_reaches_the_connection(tmp_path: Path) -> None:
    limits = load_config({"SQLITE_CACHE_MB": "3"}).store_limits
    assert limits.sqlite_cache_bytes == 3 * 1024 * 1024
    store = make_store(None, sqlite_path=str(tmp_path / "b.sqlite3"), limits=limits)
    assert isinstance(store, SqliteStore)
    assert await _cache_size(store) == -3072
    url = make_store(f"sqlite:///{tmp_path / 'c.sqlite3'}", sqlite_path="unused", limits=StoreLimits(
        sqlite_cache_bytes=1024 * 1024))
    assert isinstance(url, SqliteStore)
    assert await _cache_size(url) == -1024


def test_cache_setting_is_validated() -> None:
    assert load_config({}).storage.sqlite_cache_mb == 8
    for bad in ("0", "-1", "x"):
        with pytest.raises(ConfigError):
            load_config({"SQLITE_CACHE_MB": bad})
