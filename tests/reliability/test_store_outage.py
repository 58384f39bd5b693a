"""Database outages answered `unavailable` (issue 37, items 2, 4, 5, 6).

A database that is read-only, full, stopped or hung makes `message:send` answer
`unavailable` with `details.retry_after`, REST answer 503 with ``Retry-After`` and `/readyz`
answer 503 within its budget; the outage is logged once when it starts and once when it
ends, never per request; a retry with the same client_id after recovery stores the
message once. PostgreSQL is reached through a loopback TCP proxy that the test stops or
hangs (never the shared server itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from gateway.core.errors import Code, GatewayError
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.support.procs import PG_DSN, drop_schema
from tests.support.server import Client, RunningGateway, make_config, new_client_id, run_gateway, visitor
from tests.support.tcpproxy import TcpProxy, tcp_proxy

STORE_LOGGERS = ("gateway.store.sqlite", "gateway.store.postgres")


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """(lines saying the store went down, lines saying it is back)."""
    recs = [r for r in caplog.records if r.name in STORE_LOGGERS]
    return (sum("unavailable (" in r.getMessage() for r in recs),
            sum("available again" in r.getMessage() for r in recs))


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The gateway's log records with a traceback or saying a handler failed (asyncpg's own
    pool logs its reconnection attempts, with a backoff: not per request)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("gateway")
            and (r.exc_info or "failed" in r.getMessage())]


async def send(v: Client, conv_id: str, client_id: str, text: str = "hello") -> Any:
    return await v.call("message:send", {"conversation_id": conv_id, "client_id": client_id, "text": text},
                        timeout=30)


def assert_unavailable(ack: Any) -> float:
    assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
    retry_after = ack["error"]["details"]["retry_after"]
    assert 1 <= retry_after <= 10
    return float(retry_after)


async def readyz(url: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as r:
        return r.status, await r.json(), time.monotonic() - started


async def rest_post(rg: RunningGateway, token: str, conv_id: str, client_id: str) -> tuple[int, dict[str, Any], str]:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"client_id": client_id, "text": "r" * 900}
    async with aiohttp.ClientSession(base_url=rg.url, headers=headers) as http, \
            http.post(f"/api/v1/conversations/{conv_id}/messages", json=body) as r:
        return r.status, await r.json(), r.headers.get("Retry-After", "")


async def run_on_store(store: SqliteStore, sql: str) -> None:
    """A statement on the store's own connection (its per-connection settings)."""
    async with store.reader() as conn:
        await conn.execute(sql)


# --- SQLite: read-only, full ---------------------------------------------------------------

@pytest.mark.parametrize("fault", ["read_only", "full"])
async def test_sqlite_read_only_or_full_is_unavailable_then_recovers(tmp_path: Any, fault: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with run_gateway(make_config(tmp_path)) as rg:
        store = rg.gw.store
        assert isinstance(store, SqliteStore)
        nt = await rg.tenant()
        v = await visitor(rg.url, nt.tenant.widget_key)
        try:
            conv_id = (await v.call("conversation:start"))["conversation"]["id"]
            assert (await send(v, conv_id, new_client_id()))["ok"] is True
            assert (await readyz(rg.url))[0] == 200
            if fault == "read_only":
                await run_on_store(store, "PRAGMA query_only = ON")
                failed = new_client_id()
                ack = await send(v, conv_id, failed)
            else:  # the file may not grow any more: fill its last pages until a send fails
                async with store.reader() as conn:
                    pages = (await conn.fetchrow("PRAGMA page_count"))["page_count"]  # type: ignore[index]
                await run_on_store(store, f"PRAGMA max_page_count = {pages}")
                for _ in range(500):
                    failed = new_client_id()
                    ack = await send(v, conv_id, failed, "x" * 900)
                    if not ack["ok"]:
                        break
            assert_unavailable(ack)
            for _ in range(5):  # further sends: answered the same, not logged again
                assert_unavailable(await send(v, conv_id, new_client_id(), "x" * 900))
            status, body, _ = await readyz(rg.url)
            assert status == 503 and body["checks"]["store"].startswith("error: unavailable"), body
            status, rbody, retry_after = await rest_post(rg, nt.admin_token, conv_id, new_client_id())
            assert status == 503 and rbody["error"]["code"] == "unavailable" and int(retry_after) >= 1, rbody
            assert outage_lines(caplog) == (1, 0)
            assert tracebacks(caplog) == []

            await run_on_store(store, "PRAGMA query_only = OFF" if fault == "read_only"
                               else "PRAGMA max_page_count = 1073741823")
            ack = await send(v, conv_id, failed)  # the retry of the refused message
            assert ack["ok"] is True
            again = await send(v, conv_id, failed)
            assert again["ok"] is True and again["message"]["seq"] == ack["message"]["seq"]
            assert (await readyz(rg.url))[0] == 200
            assert outage_lines(caplog) == (1, 1)
        finally:
            await v.close()


async def test_sqlite_readiness_writes(tmp_path: Any) -> None:
    """A read-only database makes the node not ready although reads work (issue 37, item 5)."""
    async with run_gateway(make_config(tmp_path)) as rg:
        store = rg.gw.store
        assert isinstance(store, SqliteStore)
        await run_on_store(store, "PRAGMA query_only = ON")
        status, body, _ = await readyz(rg.url)
        assert status == 503 and "read_only" in body["checks"]["store"], body
        await run_on_store(store, "PRAGMA query_only = OFF")
        assert (await readyz(rg.url))[0] == 200


async def test_sqlite_not_ready_below_min_free_space(tmp_path: Any) -> None:
    store = SqliteStore(str(tmp_path / "f.sqlite3"), min_free_bytes=2**62)
    await store.open()
    try:
        await store.migrate()
        with pytest.raises(Exception) as err:
            await store.ping()
        assert getattr(err.value, "reason", None) == "low_disk"
    finally:
        await store.close()


async def test_sqlite_wal_truncated_after_outage(tmp_path: Any) -> None:
    """When writes work again after an outage the WAL is checkpointed and cut to nothing, so
    the retries of the outage start on an empty WAL (issue 37, item 6)."""
    path = tmp_path / "w.sqlite3"
    store = SqliteStore(str(path), checkpoint_interval=3600)
    await store.open()
    try:
        await store.migrate()
        for i in range(50):
            await store.get_or_create_setting(f"k{i}", "v" * 2000)
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 100_000
        await run_on_store(store, "PRAGMA query_only = ON")
        with pytest.raises(Exception) as err:
            await store.get_or_create_setting("down", "v")
        assert getattr(err.value, "reason", None) == "read_only" and store.outage.down
        await run_on_store(store, "PRAGMA query_only = OFF")
        await store.get_or_create_setting("up", "v")  # the first write after: the outage ends
        assert not store.outage.down
        assert store._recovery is not None
        await store._recovery
        assert wal.stat().st_size == 0
    finally:
        await store.close()


# --- PostgreSQL through a proxy: stopped, hung -----------------------------------------------

@pytest.fixture
async def pg_gateway(tmp_path: Any) -> AsyncIterator[tuple[RunningGateway, TcpProxy]]:
    schema = f"t_outage_{uuid.uuid4().hex[:10]}"
    async with tcp_proxy("127.0.0.1", 5432) as proxy:
        base = make_config(tmp_path)
        dsn = PG_DSN.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        config = replace(base, storage=replace(base.storage, database_url=dsn, database_schema=schema,
                                               statement_timeout=0.5, acquire_timeout=0.5))
        try:
            async with run_gateway(config) as rg:
                try:
                    yield rg, proxy
                finally:
                    proxy.resume()
        finally:
            await drop_schema(schema)


async def send_until_ok(v: Client, conv_id: str, client_id: str) -> Any:
    """The widget's way: resend with the same client_id while the answer is `unavailable`
    (each attempt waits for its answer; bounded)."""
    for _ in range(50):
        ack = await send(v, conv_id, client_id)
        if ack["ok"]:
            return ack
        assert_unavailable(ack)
    raise AssertionError("still unavailable")


@pytest.mark.parametrize("fault", ["stopped", "hung"])
async def test_postgres_stopped_or_hung_is_unavailable(pg_gateway: tuple[RunningGateway, TcpProxy], fault: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    rg, proxy = pg_gateway
    caplog.set_level(logging.INFO)
    nt = await rg.tenant()
    v = await visitor(rg.url, nt.tenant.widget_key)
    try:
        conv_id = (await v.call("conversation:start"))["conversation"]["id"]
        assert (await send(v, conv_id, new_client_id()))["ok"] is True
        if fault == "stopped":
            await proxy.stop()
        else:
            proxy.hang()
        failed = new_client_id()
        acks = await asyncio.gather(*(send(v, conv_id, cid) for cid in [failed] + [new_client_id() for _ in range(4)]))
        for ack in acks:
            assert_unavailable(ack)
        status, body, took = await readyz(rg.url)
        assert status == 503 and body["checks"]["store"] != "ok", body
        # the budget (2 s), not the store check's own 5 s (ACQUIRE_TIMEOUT): 3 s to spare for a loaded machine
        assert took < 5.0
        assert outage_lines(caplog) == (1, 0)
        assert tracebacks(caplog) == []

        proxy.resume()
        first = await send_until_ok(v, conv_id, failed)
        second = await send_until_ok(v, conv_id, failed)
        assert second["message"]["seq"] == first["message"]["seq"]
        assert isinstance(rg.gw.store, PostgresStore)
        async with rg.gw.store.reader() as conn:
            rows = await conn.fetch("SELECT seq FROM messages WHERE client_id = $1", failed)
        assert len(rows) == 1
        assert outage_lines(caplog) == (1, 1)
    finally:
        await v.close()


# --- PostgreSQL: read-only, statement timeout (the store directly) ----------------------------

@pytest.fixture
async def pg_store() -> AsyncIterator[PostgresStore]:
    schema = f"t_outage_{uuid.uuid4().hex[:10]}"
    store = PostgresStore(PG_DSN, schema=schema, min_size=1, max_size=1, append_pool_size=1,
                          statement_timeout=0.2, acquire_timeout=1.0)
    await store.open()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
        await drop_schema(schema)


async def test_postgres_read_only_is_unavailable(pg_store: PostgresStore, caplog: pytest.LogCaptureFixture) -> None:
    """A read-only database (a standby, default_transaction_read_only) refuses writes with
    SQLSTATE 25006: `unavailable` (read_only), readiness fails, reads go on."""
    async with pg_store.reader() as conn:  # the pool's one connection, kept for its session
        await conn.execute("SET SESSION default_transaction_read_only = on")
    with pytest.raises(GatewayError) as err:
        await pg_store.get_or_create_setting("k", "v")
    assert err.value.code is Code.UNAVAILABLE and getattr(err.value, "reason", None) == "read_only"
    with pytest.raises(GatewayError):
        await pg_store.ping()
    async with pg_store.reader() as conn:  # reads answer
        assert await conn.fetch("SELECT * FROM settings WHERE key = 'k'") == []
    assert outage_lines(caplog) == (1, 0)
    async with pg_store.reader() as conn:
        await conn.execute("SET SESSION default_transaction_read_only = off")
    await pg_store.ping()
    assert outage_lines(caplog) == (1, 1)


async def test_postgres_statement_timeout_is_unavailable(pg_store: PostgresStore) -> None:
    """A statement running past DATABASE_STATEMENT_TIMEOUT is cancelled by the server
    (SQLSTATE 57014): `unavailable` (timeout), not `internal`."""
    with pytest.raises(GatewayError) as err:
        async with pg_store.reader() as conn:
            await conn.execute("SELECT pg_sleep(30)")
    assert err.value.code is Code.UNAVAILABLE and getattr(err.value, "reason", None) == "timeout"
    assert err.value.details["retry_after"] >= 1
