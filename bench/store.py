"""The store's append path alone: `Store.append_batch` across many conversations.

    .venv/bin/python -m bench.store                     # SQLite, batches of ~1, 4 and 16
    .venv/bin/python -m bench.store --batch 4 --messages 20000
    .venv/bin/python -m bench.store --postgres          # PostgreSQL 127.0.0.1:5432/test, a
                                                        # random schema, dropped after

Prints CPU (the process's, and the event loop's thread alone: what limits a node) and wall
µs per message for each batch size: what one message costs the node in the store (building
the batch, its statements and their commit), without the sockets and the Socket.IO layer
around it; with SQLite also the bytes this process wrote per
message (`/proc/self/io` wchar: the WAL frames and the checkpoints' copies into the
database file); with --postgres the CPU of every postgres process on the machine over the
run (the server's side: parsing, planning, executing, WAL).
Batches mix random conversations (as group commit makes them under load); sizes are
uniform in 1 .. 2*batch - 1. A passive WAL checkpoint
runs every 2,000 messages, as the server's checkpoint thread does every second.
There is no peer to compare with; compare commits (run both, alternating: the machine
is noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

from bench.procs import PG_DSN, cpu_of_tree
from gateway.core.domain import AuthorType, Channel, NewMessage
from gateway.store.base import AppendRequest, Store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import CACHE_BYTES, SqliteStore, checkpoint_file


async def _conversations(store: Store, n: int) -> tuple[str, list[str]]:
    tenant = await store.create_tenant(name="bench", widget_key=uuid.uuid4().hex, identity_secret="x" * 32, now=1.0)
    out = []
    for _ in range(n):
        contact = await store.create_contact(tenant_id=tenant.id, name=None, email=None, now=1.0)
        conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET, contact_id=contact.id,
                                               now=1.0)
        out.append(conv.id)
    return tenant.id, out


def written_bytes() -> int:
    """Bytes this process has passed to write(2) and its kin so far (`/proc/self/io`
    wchar; 0 where there is no such file)."""
    try:
        with open("/proc/self/io") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("wchar:")), 0)
    except OSError:
        return 0


class Figures(NamedTuple):
    cpu: float  # this process's CPU, µs per message (every thread: the checkpoints' too)
    loop: float  # the event loop's thread alone, µs per message (what limits a node)
    wall: float  # µs per message
    server: float  # `server_cpu`'s CPU, µs per message
    written: float  # bytes this process wrote per message
    messages: int


async def run(store: Store, sqlite_path: str | None, conversations: int, messages: int, batch: int,
              seed: int = 1, server_cpu: Callable[[], float] | None = None
              ) -> Figures:
    tenant, convs = await _conversations(store, conversations)
    rnd = random.Random(seed)
    done = 0
    server0 = server_cpu() if server_cpu else 0.0  # read outside the timed phase
    cpu0, wall0, written0 = time.process_time(), time.perf_counter(), written_bytes()
    loop0 = time.thread_time()
    while done < messages:
        k = rnd.randint(1, 2 * batch - 1)
        reqs = [AppendRequest(tenant, rnd.choice(convs), NewMessage(
            author_type=AuthorType.CONTACT, author_id=None, text=f"message {done + i} from the bench",
            client_id=str(uuid.uuid4()))) for i in range(k)]
        await store.append_batch(reqs, now=time.time())
        if sqlite_path is not None and done // 2000 != (done + k) // 2000:
            await asyncio.to_thread(checkpoint_file, sqlite_path)
        done += k
    cpu, loop, wall = time.process_time() - cpu0, time.thread_time() - loop0, time.perf_counter() - wall0
    written = written_bytes() - written0
    server = server_cpu() - server0 if server_cpu else 0.0
    return Figures(cpu / done * 1e6, loop / done * 1e6, wall / done * 1e6, server / done * 1e6, written / done, done)


async def one(args: argparse.Namespace, batch: int) -> str:
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        pg = PostgresStore(PG_DSN, schema=schema)
        await pg.open()
        try:
            await pg.migrate()
            f = await run(pg, None, args.conversations, args.messages, batch,
                          server_cpu=partial(cpu_of_tree, "postgres"))
        finally:
            async with pg.transaction() as conn:
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await pg.close()
        return (f"postgres  batch ~{batch:>3}: {f.messages} messages, CPU {f.cpu:6.1f} µs/msg (this process;"
                f" loop thread {f.loop:6.1f}), PostgreSQL {f.server:6.1f} µs/msg (every postgres process),"
                f" wall {f.wall:6.1f}")
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "bench.sqlite3")
        lite = SqliteStore(path, cache_bytes=args.cache_mb * 1024 * 1024)
        await lite.open()
        try:
            await lite.migrate()
            f = await run(lite, path, args.conversations, args.messages, batch)
        finally:
            await lite.close()
    return (f"sqlite    batch ~{batch:>3}: {f.messages} messages, CPU {f.cpu:6.1f} µs/msg (loop thread"
            f" {f.loop:6.1f}), wall {f.wall:6.1f} µs/msg, written {f.written / 1024:5.1f} KB/msg")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, action="append", help="mean batch size (repeatable; default 1, 4, 16)")
    p.add_argument("--messages", type=int, default=40_000)
    p.add_argument("--conversations", type=int, default=5_000)
    p.add_argument("--cache-mb", type=int, default=CACHE_BYTES // (1024 * 1024),
                   help="SQLite's page cache (SQLITE_CACHE_MB; default the node's)")
    p.add_argument("--postgres", action="store_true", help="PostgreSQL at 127.0.0.1:5432/test instead of SQLite")
    args = p.parse_args()
    for b in args.batch or [1, 4, 16]:
        print(asyncio.run(one(args, b)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
