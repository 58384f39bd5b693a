"""Gateway nodes as real processes (`python -m gateway serve`) on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000  # below: ports other services of a machine tend to have


def free_port() -> int:
    """A loopback TCP port nobody holds now, for a server a test starts after this returns.

    Taken outside the kernel's ephemeral range (32768-60999 by default): a port the kernel
    hands out itself (a bind to port 0) is also what it gives the next outgoing connection
    as its local port — the test's own clients, a CLI subprocess connecting to PostgreSQL —
    and one of them took such a port between the pick and the gateway's bind (CI, 2026-12-08:
    "address already in use" in tests/reliability/test_drain.py)."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    pick = random.SystemRandom()
    for _ in range(1000):
        port = pick.randrange(LOWEST_PORT, max(LOWEST_PORT + 1000, low))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@dataclass
class Cluster:
    env: dict[str, str]
    tmp: Path
    nodes: list[Node] = field(default_factory=list)

    async def cli(self, *args: str) -> dict[str, str]:
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway", *args], env=self.env, cwd=ROOT, capture_output=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr.decode()
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def start(self, name: str, **extra_env: str) -> Node:
        port = free_port()
        log_path = self.tmp / f"{name}.log"
        env = {**self.env, "PORT": str(port), "NODE_ID": name, **extra_env}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT)
        node = Node(name, port, proc, log_path)
        self.nodes.append(node)
        return node

    async def wait_ready(self, node: Node, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert node.proc.poll() is None, f"{node.name} exited:\n{node.log()}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(node.url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{node.name} not ready:\n{node.log()}")


async def drop_schema(schema: str, dsn: str = PG_DSN) -> None:
    """DROP SCHEMA … CASCADE: a test's random PostgreSQL schema, after it."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def pg_redis_cluster(tmp: Path) -> AsyncIterator[Cluster]:
    """Environment for nodes sharing one PostgreSQL schema and one Redis prefix (dropped after)."""

    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DATABASE_URL": PG_DSN,
        "DATABASE_SCHEMA": schema,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
        "DATA_DIR": str(tmp),
        "PRESENCE_INTERVAL": "1",
        "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PYTHONUNBUFFERED": "1",
    }
    cluster = Cluster(env, tmp)
    try:
        yield cluster
    finally:
        for node in cluster.nodes:
            node.kill()
        await drop_schema(schema)
