"""The type of the contract suites' `store` fixture for feature repositories: one opened
store that is both the core `Store` and the `Database` features keep their tables on
(`SqliteStore` and `PostgresStore` are)."""

from __future__ import annotations

from typing import Protocol

from gateway.store.base import Store
from gateway.store.db import Database


class StoreDatabase(Store, Database, Protocol):
    """A `Store` whose database a feature repository runs on."""
