"""The two servers under test as child processes, and what /proc says about them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
PEER_TENANTS = 20_000  # the peer's widget keys wk-0 … wk-19999 (bench/peer/server.mjs), and `wk`


def raise_fd_limit() -> None:
    """This process's soft limit of open files up to its hard limit (20,000 here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def merge_results(path: Path, ran: dict[str, Any], started: str) -> dict[str, Any]:
    """The results file at `path` with the workloads of `ran` replaced and the others kept,
    noting in `merged_runs` when each replaced workload ran (`started`)."""
    earlier = json.loads(path.read_text()) if path.exists() else {}
    runs = {**earlier.get("merged_runs", {}), **dict.fromkeys(ran, started)}
    return {**earlier, **ran, "merged_runs": runs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_named(name: str) -> list[int]:
    """Pids whose /proc/<pid>/comm starts with `name` (e.g. every PostgreSQL backend)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().startswith(name):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def cpu_of_tree(name: str) -> float:
    """CPU seconds of the processes named `name`, those that have exited included: each
    one's utime + stime + cutime + cstime, where a parent's cutime + cstime holds the
    children it reaped (PostgreSQL's postmaster reaps its backends, and asyncpg's pool
    replaces a connection after 50,000 queries). The difference of two readings is what
    they used in between."""
    total = 0.0
    for pid in processes_named(name):
        try:
            total += sum(int(x) for x in _stat_fields(pid)[11:15]) / CLK_TCK
        except OSError:
            continue
    return total


def store_cpu_seconds() -> float:
    """CPU seconds of the machine's PostgreSQL and Redis processes (see `cpu_of_tree`)."""
    return cpu_of_tree("postgres") + cpu_of_tree("redis-server")


def machine_cpu_seconds() -> tuple[float, int]:
    """(CPU seconds the whole machine was busy — every state of /proc/stat's `cpu` line but
    idle and iowait —, the number of CPUs): the difference of two readings over the time
    between them is how many cores were busy, whoever used them."""
    lines = Path("/proc/stat").read_text().splitlines()
    ticks = [int(x) for x in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK, cpus


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: fields[0] is the state, [11:15] utime,
    stime, cutime, cstime."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds_exact(pid: int) -> float:
    """Seconds on a CPU of every live thread of a process, from /proc/<pid>/task/*/schedstat
    (nanoseconds: `cpu_seconds` counts clock ticks, 10 ms each, so a short window of a light
    process may read 0)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def main_thread_sched(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process's main thread
    (the event loop's in both servers), from /proc/<pid>/schedstat."""
    on_cpu, waiting = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def rss_kb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB


def children(pid: int) -> list[int]:
    """Direct children (a WORKERS > 1 node's worker processes)."""
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def tree(pid: int) -> list[int]:
    return [pid, *children(pid)]


def node_bin() -> str:
    node = shutil.which("node")
    if not node:
        raise SystemExit("node is required (Node 20)")
    return node


def ensure_npm(dirname: str) -> None:
    d = BENCH / dirname
    if not (d / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=d, check=True)


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    # what the load generator sends in `auth` on each namespace
    visitor_auth: dict[str, str] = field(default_factory=dict)
    agent_auth: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] | None = None  # a gateway's environment (None for the peer)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        """The server's CPU seconds; a node with workers: its supervisor's and live workers' together."""
        return sum(cpu_seconds(p) for p in tree(self.pid))

    def rss(self) -> int:
        return sum(rss_kb(p) for p in tree(self.pid))

    def sched(self) -> tuple[float, float]:
        """The main thread's (seconds on a CPU, seconds waiting for one)."""
        return main_thread_sched(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


async def _wait_http(srv: Server, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if srv.proc.poll() is not None:
                raise RuntimeError(f"{srv.name} exited:\n{srv.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(srv.url + path) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{srv.name} not ready:\n{srv.log()}")


def gateway_env(tmp: Path, *, multinode: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "DATA_DIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
        # the bench drives thousands of sockets from a few loopback addresses
        "MAX_CONNECTIONS_PER_IP": "1000000",
        "RATE_VISITOR_MESSAGES_PER_SEC": "1000000",
        "RATE_VISITOR_MESSAGES_BURST": "1000000",
        "RATE_IP_MESSAGES_PER_SEC": "1000000",
        "RATE_IP_MESSAGES_BURST": "1000000",
        "RATE_IP_CONVERSATIONS_PER_MIN": "100000000",
        "RATE_IP_CONVERSATIONS_BURST": "1000000",
        "MAX_CONVERSATIONS_PER_VISITOR": "10000",
    }
    for k in ("DATABASE_URL", "DATABASE_SCHEMA", "REDIS_URL", "REDIS_PREFIX", "MASTER_KEY"):
        env.pop(k, None)
    if multinode:
        env.update(multinode)
    return env


async def gateway_cli(env: dict[str, str], *args: str) -> dict[str, str]:
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway", *args], env=env, cwd=ROOT,
                                  capture_output=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode())
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def start_gateway(name: str, env: dict[str, str], tmp: Path, tenant: dict[str, str]) -> Server:
    port = free_port()
    log_path = tmp / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.serve"], env={**env, "PORT": str(port), "NODE_ID": name},
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, f"http://127.0.0.1:{port}", proc, log_path,
                  visitor_auth={"widget_key": tenant["widget_key"]}, agent_auth={"token": tenant["admin_token"]},
                  env=env)


async def tenant_auths(srv: Server, n: int) -> list[dict[str, dict[str, str]]]:
    """n tenants, as (visitor auth, agent auth) pairs: created in the gateway's store, or
    the peer's in-memory widget keys `wk-<i>` (it scopes `conversation:updated` by tenant i;
    its agents name their tenant, as it authenticates no agent)."""
    if srv.env is None:
        if n > PEER_TENANTS:
            raise ValueError(f"the peer knows {PEER_TENANTS} widget keys")
        return [{"visitor": {"widget_key": f"wk-{i}"}, "agent": {"tenant": str(i)}} for i in range(n)]
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bench.tenants", str(n)], env=srv.env,
                                  cwd=ROOT, capture_output=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode())
    return [{"visitor": {"widget_key": t["widget_key"]}, "agent": {"token": t["admin_token"]}}
            for t in json.loads(out.stdout)]


@contextlib.asynccontextmanager
async def _one_node(name: str, env: dict[str, str], tmp: Path) -> AsyncIterator[Server]:
    """A gateway node in `env` with a tenant made by the CLI, once it answers /healthz."""
    tenant = await gateway_cli(env, "tenant", "create", "--name", "Bench")
    srv = start_gateway(name, env, tmp, tenant)
    try:
        await _wait_http(srv, "/healthz")
        yield srv
    finally:
        srv.stop()


@contextlib.asynccontextmanager
async def gateway(name: str = "ours", *, env_extra: dict[str, str] | None = None) -> AsyncIterator[Server]:
    """One gateway node on embedded defaults: a temp DATA_DIR, a tenant made by the CLI."""
    with tempfile.TemporaryDirectory(prefix="izh-bench-") as d:
        tmp = Path(d)
        env = {**gateway_env(tmp), **(env_extra or {})}
        async with _one_node(name, env, tmp) as srv:
            yield srv


@contextlib.asynccontextmanager
async def _shared_backends() -> AsyncIterator[tuple[Path, dict[str, str]]]:
    """An environment on PostgreSQL (a random schema, dropped after) and Redis (a random prefix)."""
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="izh-bench-") as d:
        tmp = Path(d)
        env = gateway_env(tmp, multinode={
            "DATABASE_URL": PG_DSN, "DATABASE_SCHEMA": schema, "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
            "MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        })
        try:
            yield tmp, env
        finally:
            conn = await asyncpg.connect(PG_DSN)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


@contextlib.asynccontextmanager
async def gateway_pair() -> AsyncIterator[tuple[Server, Server]]:
    """Two gateway nodes sharing PostgreSQL and Redis."""
    async with _shared_backends() as (tmp, env):
        servers: list[Server] = []
        try:
            tenant = await gateway_cli(env, "tenant", "create", "--name", "Bench")
            servers = [start_gateway(n, env, tmp, tenant) for n in ("node-a", "node-b")]
            for s in servers:
                await _wait_http(s, "/healthz")
            yield servers[0], servers[1]
        finally:
            for s in servers:
                s.stop()


@contextlib.asynccontextmanager
async def gateway_shared(name: str = "ours-pg") -> AsyncIterator[Server]:
    """One gateway node on PostgreSQL (a random schema) and Redis (a random prefix)."""
    async with _shared_backends() as (tmp, env), _one_node(name, env, tmp) as srv:
        yield srv


@contextlib.asynccontextmanager
async def gateway_workers(count: int) -> AsyncIterator[Server]:
    """One node of `count` worker processes on one port (WORKERS), on PostgreSQL and Redis."""
    async with _shared_backends() as (tmp, env):
        env = {**env, "WORKERS": str(count)}
        tenant = await gateway_cli(env, "tenant", "create", "--name", "Bench")
        srv = start_gateway("ours-workers", env, tmp, tenant)
        try:
            await _wait_workers(srv, count)
            yield srv
        finally:
            srv.stop(timeout=30)


async def _wait_workers(srv: Server, count: int, timeout: float = 60.0) -> None:
    """Until each of the node's `count` workers has answered /metrics?scope=worker (fresh
    connections: the kernel picks a worker for each)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        while time.monotonic() < deadline and len(seen) < count:
            if srv.proc.poll() is not None:
                raise RuntimeError(f"{srv.name} exited:\n{srv.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(srv.url + "/metrics?scope=worker") as resp:
                    for line in (await resp.text()).splitlines():
                        if line.startswith("izh_node_info{"):
                            seen.add(line.split('node="', 1)[1].split('"', 1)[0])
            await asyncio.sleep(0.05)
    if len(seen) < count:
        raise RuntimeError(f"{srv.name}: {len(seen)} of {count} workers answered:\n{srv.log()}")


def start_peer(tmp: Path) -> Server:
    ensure_npm("peer")
    port = free_port()
    log_path = tmp / "peer.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", "-c", f'ulimit -n $(ulimit -Hn); exec "{node_bin()}" server.mjs {port}'],
                                cwd=BENCH / "peer", stdout=log, stderr=subprocess.STDOUT)
    return Server("peer", f"http://127.0.0.1:{port}", proc, log_path, visitor_auth={"widget_key": "wk"})


@contextlib.asynccontextmanager
async def peer() -> AsyncIterator[Server]:
    with tempfile.TemporaryDirectory(prefix="izh-peer-") as d:
        srv = start_peer(Path(d))
        try:
            await _wait_http(srv, "/socket.io/?EIO=4&transport=polling")
            yield srv
        finally:
            srv.stop()
