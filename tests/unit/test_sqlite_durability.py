"""SqliteStore's durability on real files: an append is answered only once its COMMIT has
returned — another connection sees it at once, a killed process keeps it, and an append
whose commit cannot be written is refused, not answered."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from gateway.core.domain import AuthorType, Channel, NewMessage
from gateway.store.base import AppendRequest
from tests.support.stores import open_sqlite


def _msg(text: str, client_id: str | None = None) -> NewMessage:
    return NewMessage(author_type=AuthorType.CONTACT, author_id=None, text=text, client_id=client_id)


def _reopened(path: Path, sql: str) -> tuple[Any, ...]:
    """The row `sql` returns on a fresh connection, once the file has passed SQLite's
    integrity check."""
    r = sqlite3.connect(path)
    try:
        assert r.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        row: tuple[Any, ...] = r.execute(sql).fetchone()
        return row
    finally:
        r.close()


async def test_every_answered_append_is_seen_by_another_connection_at_once(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = await open_sqlite(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
        convs = []
        for _ in range(3):
            contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
            convs.append((await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET,
                                                          contact_id=contact.id, now=1.0)).id)
        answered = 0
        for i in range(60):
            size = 1 + i % 7
            batch = [AppendRequest(tenant.id, convs[(i + j) % 3], _msg(f"m{i}.{j}", client_id=f"c{i}.{j}"))
                     for j in range(size)]
            if i % 10 == 9:  # a client's retry of a stored message: the batch runs the locking way
                batch.append(AppendRequest(tenant.id, convs[(i - 1) % 3], _msg("again", client_id=f"c{i - 1}.0")))
            results = await store.append_batch(batch, now=2.0 + i)
            answered += sum(1 for r in results if r is not None and r.created)
            assert reader.execute("SELECT count(*) FROM messages").fetchone() == (answered,)
            for r in results:
                assert r is not None
                row = reader.execute("SELECT seq FROM messages WHERE id = ?", (r.message.id,)).fetchone()
                assert row == (r.message.seq,)
        assert store.optimistic_retries == 6
    finally:
        reader.close()
        await store.close()


def _child(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """`code` run in a fresh interpreter, inside `async def main()`, with `store` (an open
    SqliteStore on `path`, no checkpoint during the run), `tenant`, `conv` and `msg(i)`."""
    prelude = textwrap.dedent("""
        import asyncio, os, resource, signal, sqlite3, sys
        from gateway.core.domain import AuthorType, Channel, NewMessage
        from gateway.store.base import AppendRequest
        from gateway.store.outage import StoreUnavailable
        from gateway.store.sqlite import SqliteStore

        def msg(i, size=10):
            return NewMessage(author_type=AuthorType.CONTACT, author_id=None, text=str(i) * size,
                              client_id=str(i))

        async def main():
            store = SqliteStore(sys.argv[1], checkpoint_interval=3600)
            await store.open()
            await store.migrate()
            tenant = await store.create_tenant(name="T", widget_key="wk", identity_secret="s", now=1.0)
            contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
            conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET,
                                                   contact_id=contact.id, now=1.0)
    """)
    body = textwrap.indent(textwrap.dedent(code), " " * 4)
    return subprocess.run([sys.executable, "-c", prelude + body + "\nasyncio.run(main())\n", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])


def test_a_killed_process_keeps_every_answered_append(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite3"
    out = _child(path, """
        answered = 0
        for i in range(0, 300, 3):
            res = await store.append_batch([AppendRequest(tenant.id, conv.id, msg(i + j)) for j in range(3)],
                                           now=2.0)
            answered += len(res)
        async with store.transaction() as conn:  # not committed when the process dies
            await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2)", "k", "v")
            print("answered", answered, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert "answered 300" in out.stdout, out.stderr
    assert out.returncode == -9
    assert _reopened(path, "SELECT count(*), max(seq), count(DISTINCT seq) FROM messages") == (300, 300, 300)
    assert _reopened(path, "SELECT count(*) FROM settings WHERE key = 'k'") == (0,)


def test_an_append_whose_commit_cannot_be_written_is_refused_and_the_file_stays_whole(tmp_path: Path) -> None:
    """The WAL may not grow past a limit (RLIMIT_FSIZE: writes beyond it fail with EFBIG):
    the append that needs it raises `unavailable` instead of answering, and nothing of it is
    stored."""
    path = tmp_path / "f.sqlite3"
    out = _child(path, """
        for i in range(20):
            await store.append_batch([AppendRequest(tenant.id, conv.id, msg(i))], now=2.0)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        wal = os.path.getsize(sys.argv[1] + "-wal")
        resource.setrlimit(resource.RLIMIT_FSIZE, (wal + 20_000, resource.RLIM_INFINITY))
        try:
            res = await store.append_batch([AppendRequest(tenant.id, conv.id, msg(100 + j, 3000))
                                            for j in range(10)], now=3.0)
            print("answered", [r.message.seq for r in res if r], flush=True)
        except StoreUnavailable as exc:  # the driver's error, typed at the store boundary
            print("refused:", exc.code, exc.__cause__.sqlite_errorname, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert "refused: unavailable SQLITE_" in out.stdout, (out.stdout, out.stderr)
    assert _reopened(path, "SELECT count(*), max(seq) FROM messages") == (20, 20)
    assert _reopened(path, "SELECT last_seq FROM conversations") == (20,)
