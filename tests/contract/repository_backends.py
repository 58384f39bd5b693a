"""The databases the connectors' repository contract suites run on.

Like `test_store_contract.py`'s `backend`: a fresh, empty database per test (a temp SQLite
file, or a random PostgreSQL schema dropped afterwards), here opened twice as two "nodes"
(`Nodes.stores`), for the contracts that hold across nodes. PostgreSQL must be reachable
(IZIHELP_TEST_PG_DSN overrides the default DSN): a connection error fails the postgres
tests, it never skips them. The suites share the `nodes` fixture (imported, and named in
their `__all__`); a suite that needs other objects per backend builds them from `open_nodes`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.core.domain import Channel
from gateway.store.factory import open_store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.support.procs import drop_schema

PG_DSN = os.environ.get("IZIHELP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

Opened = SqliteStore | PostgresStore

# the fixture params of every suite: the two SQL backends
BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Nodes:
    kind: str
    stores: list[Opened]  # two stores opened on one database

    @property
    def db(self) -> Opened:
        return self.stores[0]

    async def tenant(self, name: str = "Shop") -> str:
        t = await self.db.create_tenant(name=name, widget_key=f"wk_{uuid.uuid4().hex}", identity_secret="s",
                                        now=1.0)
        return t.id

    async def conversation(self, tenant_id: str, channel: Channel = Channel.EMAIL) -> str:
        contact = await self.db.create_contact(tenant_id=tenant_id, name="C", email=None, now=1.0)
        conv = await self.db.create_conversation(tenant_id=tenant_id, channel=channel, contact_id=contact.id,
                                                 now=1.0, external_thread_id=f"th-{uuid.uuid4().hex[:8]}")
        return conv.id


@contextlib.asynccontextmanager
async def open_nodes(kind: str, tmp_path: Path) -> AsyncIterator[Nodes]:
    if kind == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'repos.sqlite3'}", None
    else:
        url, schema = PG_DSN, f"repo_{uuid.uuid4().hex[:12]}"
    opened: list[Opened] = []
    try:
        for _ in range(2):
            opened.append(await open_store(url, sqlite_path="unused", schema=schema))
        yield Nodes(kind, opened)
    finally:
        for s in opened:
            await s.close()
        if schema is not None and opened:
            await drop_schema(schema, PG_DSN)


@pytest.fixture(params=BACKENDS)
async def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Nodes]:
    """Two nodes on a fresh database of each backend in turn."""
    async with open_nodes(request.param, tmp_path) as n:
        yield n
