"""The WAL-write-gathering VFS (`gateway/store/_walvfs.c`) on real files: fewer write calls,
and nothing else changes — other connections see each commit at once, a killed process
keeps every commit that returned, a failed write fails its commit."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from gateway.store.sqlite import SqliteStore, checkpoint_file
from gateway.store.sqlwriter import wal_gathering_vfs

VFS = wal_gathering_vfs()
pytestmark = pytest.mark.skipif(VFS is None, reason="the _sqlwriter extension is not built")


def _open(path: Path, *, gather: bool, page_size: int | None = None) -> sqlite3.Connection:
    target = f"file:{urllib.parse.quote(str(path))}" + (f"?vfs={VFS}" if gather else "")
    db = sqlite3.connect(target, uri=True, isolation_level=None)
    if page_size:
        db.execute(f"PRAGMA page_size = {page_size}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)")
    db.execute("CREATE INDEX IF NOT EXISTS t_v ON t (v)")
    return db


def _reopened(path: Path, sql: str) -> tuple[Any, ...]:
    """The row `sql` returns on a fresh connection with SQLite's own VFS, once the file
    has passed SQLite's integrity check."""
    r = sqlite3.connect(path)
    try:
        assert r.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        row: tuple[Any, ...] = r.execute(sql).fetchone()
        return row
    finally:
        r.close()


def _write_calls() -> int:
    """This process's write system calls so far (pwrite included)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscw:"))


def _commit_spread_rows(db: sqlite3.Connection, first: int, n: int) -> None:
    """One commit that dirties ~2n pages: n rows far apart, each with an index entry."""
    db.execute("BEGIN")
    for i in range(n):
        db.execute("INSERT INTO t VALUES (?, ?)", (first + i * 1000, os.urandom(600)))
    db.execute("COMMIT")


@pytest.mark.parametrize("gather", [True, False])
def test_a_commit_is_one_write_call_instead_of_two_per_page(tmp_path: Path, gather: bool) -> None:
    db = _open(tmp_path / "a.sqlite3", gather=gather)
    try:
        for r in range(5):  # the table and index grow to many pages
            _commit_spread_rows(db, r, 12)
        before = _write_calls()
        for r in range(5, 15):  # commits of ~24 frames, ~100 KB: within the buffer
            _commit_spread_rows(db, r, 12)
        per_commit = (_write_calls() - before) / 10
    finally:
        db.close()
    frames = 12  # at least: 12 rows far apart, on 12 table pages, and their index entries
    if gather:
        assert per_commit <= 2, per_commit
    else:
        assert per_commit >= 2 * frames, per_commit


def test_another_connection_sees_every_commit_at_once(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    w = _open(path, gather=True)
    r = _open(path, gather=False)
    try:
        for k in range(1, 200):
            w.execute("INSERT INTO t VALUES (?, ?)", (k, os.urandom(k * 10)))
            assert r.execute("SELECT count(*), max(k) FROM t").fetchone() == (k, k)
        # a transaction larger than the buffer (flushed in parts) and one rewriting its pages
        w.execute("BEGIN")
        w.executemany("INSERT INTO t VALUES (?, ?)", ((k, os.urandom(3000)) for k in range(1000, 2000)))
        w.execute("UPDATE t SET v = x'00' WHERE k >= 1000")
        w.execute("COMMIT")
        assert r.execute("SELECT count(*), sum(length(v)) FROM t WHERE k >= 1000").fetchone() == (1000, 1000)
        # a rolled-back transaction leaves nothing behind, and the next commit lands
        w.execute("BEGIN")
        w.executemany("INSERT INTO t VALUES (?, ?)", ((k, os.urandom(3000)) for k in range(5000, 6000)))
        w.execute("ROLLBACK")
        w.execute("INSERT INTO t VALUES (9999, x'01')")
        assert r.execute("SELECT count(*) FROM t WHERE k >= 5000").fetchone() == (1,)
        assert r.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        w.close()
        r.close()


def test_large_pages_and_a_checkpoint_from_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    w = _open(path, gather=True, page_size=65536)  # one frame: 24 + 65,536 bytes
    try:
        for k in range(50):
            w.execute("INSERT INTO t VALUES (?, ?)", (k, os.urandom(40_000)))
        busy, frames, copied = checkpoint_file(str(path), "TRUNCATE")
        assert (busy, frames, copied) == (0, 0, 0)  # truncated: everything copied
        w.execute("INSERT INTO t VALUES (50, x'02')")
    finally:
        w.close()
    assert _reopened(path, "SELECT (SELECT page_size FROM pragma_page_size()), count(*) FROM t") == (65536, 51)


def _child(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    prelude = textwrap.dedent("""
        import os, resource, signal, sqlite3, sys, urllib.parse
        from gateway.store.sqlwriter import wal_gathering_vfs
        vfs = wal_gathering_vfs()
        path = sys.argv[1]
        db = sqlite3.connect(f"file:{urllib.parse.quote(path)}?vfs={vfs}", uri=True, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)")
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), str(path)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])


def test_a_killed_process_keeps_every_commit_that_returned(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    out = _child(path, """
        for k in range(300):
            db.execute("INSERT INTO t VALUES (?, ?)", (k, os.urandom(500)))
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (1000, x'00')")  # not committed
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert "committed" in out.stdout, out.stderr
    assert out.returncode == -9
    assert _reopened(path, "SELECT count(*), max(k) FROM t") == (300, 299)


def test_a_write_that_fails_fails_its_commit_and_the_file_stays_whole(tmp_path: Path) -> None:
    """The gathered frames go to the file inside the commit frame's write: a write error
    there (here the file size limit, EFBIG) is the commit's error, not a lost commit. (The
    commit, ~40 KB, fits in the buffer: nothing but the commit frame writes it.)"""
    path = tmp_path / "e.sqlite3"
    out = _child(path, """
        for k in range(20):
            db.execute("INSERT INTO t VALUES (?, ?)", (k, os.urandom(100)))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        wal = os.path.getsize(path + "-wal")
        resource.setrlimit(resource.RLIMIT_FSIZE, (wal + 20_000, resource.RLIM_INFINITY))
        try:
            db.execute("BEGIN")
            db.executemany("INSERT INTO t VALUES (?, ?)", ((k, os.urandom(3000)) for k in range(100, 110)))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            print("failed:", exc.sqlite_errorname, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert "failed: SQLITE_" in out.stdout, (out.stdout, out.stderr)
    assert _reopened(path, "SELECT count(*) FROM t") == (20,)


async def test_the_store_uses_it_on_disk_only_and_when_asked(tmp_path: Path) -> None:
    on = SqliteStore(str(tmp_path / "on.sqlite3"))
    off = SqliteStore(str(tmp_path / "off.sqlite3"), wal_gather=False)
    mem = SqliteStore(":memory:")
    odd = SqliteStore(str(tmp_path / "a dir?#%" / "s.sqlite3"))  # quoted into the URI
    for s in (on, off, mem, odd):
        await s.open()
    try:
        assert (on.wal_vfs, off.wal_vfs, mem.wal_vfs, odd.wal_vfs) == (VFS, None, None, VFS)
        await odd.migrate()
        assert (tmp_path / "a dir?#%" / "s.sqlite3").exists()
    finally:
        for s in (on, off, mem, odd):
            await s.close()


@pytest.mark.parametrize("spill", ["insert", "update"])
def test_frames_of_a_rolled_back_spill_never_overwrite_another_connections_commit(tmp_path: Path,
                                                                                  spill: str) -> None:
    """A transaction larger than the page cache spills frames to the WAL before its commit;
    rolled back, they are garbage past the WAL's end. Gathered, they must reach the file while
    this connection still holds the write lock — not later, over frames another connection
    has committed at the same offsets since. (A read from the WAL writes them too, and an
    insert that grows the file makes SQLite re-read page 1 during the rollback; an update of
    rows read from the database file reads nothing from the WAL: only the write lock's
    release writes its frames.)"""
    path = tmp_path / "f.sqlite3"
    a = _open(path, gather=True)
    b = _open(path, gather=False)
    try:
        # a table without an index: which frames a spill rewrites (and so writes at once)
        # does not depend on the data, and the last ones always stay gathered
        a.execute("CREATE TABLE u (k INTEGER PRIMARY KEY, v BLOB)")
        a.executemany("INSERT INTO u VALUES (?, zeroblob(2000))", ((k,) for k in range(1, 301)))
        a.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the spill's reads come from the database file
        a.execute("PRAGMA cache_size = 10")  # pages: the transaction below spills
        a.execute("BEGIN")
        if spill == "insert":
            a.executemany("INSERT INTO u VALUES (?, randomblob(2000))", ((k,) for k in range(500, 540)))
        else:
            a.execute("UPDATE u SET v = randomblob(2000) WHERE k <= 40")
        a.execute("ROLLBACK")
        b.execute("UPDATE u SET v = x'07' WHERE k <= 60")
        b.executemany("INSERT INTO u VALUES (?, zeroblob(2000))", ((k,) for k in range(1000, 1040)))
        assert a.execute("SELECT count(*), sum(v = x'07') FROM u").fetchone() == (340, 60)  # a reads the WAL
        a.execute("INSERT INTO u VALUES (2000, x'02')")
        assert b.execute("SELECT count(*), sum(v = x'07') FROM u").fetchone() == (341, 60)
        assert b.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        a.close()
        b.close()
    assert _reopened(path, "SELECT count(*), sum(v = x'07') FROM u") == (341, 60)
