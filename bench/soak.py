"""A soak: one node under connection churn and a steady message stream, watched for drift.

    .venv/bin/python -m bench.soak                          # SQLite, then PostgreSQL + Redis: 5 min each
    .venv/bin/python -m bench.soak --backend sqlite --seconds 60

One gateway node (on its embedded SQLite, or on PostgreSQL and Redis) with one tenant. Two
load-generator processes on the stock npm client (bench/load/worker.mjs):

* **churn**: `--rate` visitors a second connect to `/visitor` with the tenant's widget key
  (a fraction `--returning` with the visitor token an earlier visitor was given, so the
  handshake finds its contact and its conversations), wait for `session`, resume the
  conversations the session lists or, for a fraction `--start` of those that have none,
  start one, and disconnect after `--hold` seconds. The tenant's conversations and contacts
  grow all the while (about 35 conversations a second at the defaults);
* **messages**: `--pairs` visitor + agent pairs of the same tenant, the visitors posting
  `--messages` messages a second in all, each delivered to the pair's agent.

Every `--interval` seconds it prints the node's CPU (% of one core over the interval), RSS
(and its anonymous part: the heap, where SQLite's page cache lives too), open file
descriptors, live connections (`izh_open_connections`), the latency of one `GET /healthz`,
and the machine's load average (the machine may be shared: a CPU reading is only as good
as the machine's quiet). At the end: the least-squares slopes, per minute, of CPU, RSS and
anonymous RSS over the first and the second half of the run (flat in the second half is the
goal: no work or memory growing with the connections served or the tenant's size), and
what the load generators counted (connections, sessions, conversations started and
resumed, errors; messages sent, acked, lost, latency p50 / p99).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import procs
from bench.workers import Worker, close_all, start_workers


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started
    cpu: float  # % of one core over the interval before t
    rss_mb: float
    anon_mb: float  # of which anonymous memory (the heap: Python's objects, SQLite's page cache)
    fds: int
    conns: float
    healthz_ms: float
    load1: float


def anon_mb(srv: procs.Server) -> float:
    """RssAnon of the node's processes (the rest of RSS is mapped files: code, the mmap'd database)."""
    kb = 0
    for pid in procs.tree(srv.pid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            kb += sum(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))
    return kb / 1024


def open_fds(srv: procs.Server) -> int:
    total = 0
    for pid in procs.tree(srv.pid):
        with contextlib.suppress(OSError):  # exited meanwhile
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


async def open_connections(http: aiohttp.ClientSession, srv: procs.Server) -> float:
    async with http.get(srv.url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("izh_open_connections "):
                return float(line.rsplit(" ", 1)[1])
    return float("nan")


async def healthz_ms(http: aiohttp.ClientSession, srv: procs.Server) -> float:
    t = time.monotonic()
    async with http.get(srv.url + "/healthz") as resp:
        await resp.read()
    return (time.monotonic() - t) * 1000


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / var if var else float("nan")


def halves(samples: list[Sample], field: Callable[[Sample], float], seconds: float) -> tuple[float, float]:
    first = [(s.t, field(s)) for s in samples if s.t <= seconds / 2]
    second = [(s.t, field(s)) for s in samples if s.t > seconds / 2]
    return slope_per_min(first), slope_per_min(second)


async def watch(srv: procs.Server, seconds: float, interval: float, samples: list[Sample]) -> None:
    """Sample the node every `interval` seconds for `seconds`, printing each sample."""
    print(f"  {'t s':>5} {'CPU %':>6} {'RSS MB':>7} {'anon':>6} {'fds':>5} {'conns':>6} {'healthz ms':>10}"
          f" {'load1':>6}", flush=True)
    async with aiohttp.ClientSession() as http:
        t0 = time.monotonic()
        cpu0, at0 = srv.cpu(), t0
        k = 1
        while True:
            await asyncio.sleep(max(0.0, t0 + k * interval - time.monotonic()))
            now = time.monotonic()
            cpu1 = srv.cpu()
            s = Sample(now - t0, 100 * (cpu1 - cpu0) / (now - at0), srv.rss() / 1024, anon_mb(srv), open_fds(srv),
                       await open_connections(http, srv), await healthz_ms(http, srv), os.getloadavg()[0])
            cpu0, at0 = cpu1, now
            samples.append(s)
            print(f"  {s.t:5.0f} {s.cpu:6.1f} {s.rss_mb:7.1f} {s.anon_mb:6.1f} {s.fds:5d} {s.conns:6.0f}"
                  f" {s.healthz_ms:10.1f} {s.load1:6.2f}", flush=True)
            if s.t >= seconds - interval / 2:
                return
            k += 1


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


async def soak(srv: procs.Server, a: argparse.Namespace) -> dict[str, Any]:
    ws: list[Worker] = await start_workers(srv.url, 2)
    try:
        churner, talker = ws
        auths = [{"visitor": srv.visitor_auth, "agent": srv.agent_auth}] * a.pairs
        ready = await talker.request("pairs", "ready", count=a.pairs, auths=auths, timeout=120)
        if ready["failed"]:
            raise RuntimeError(f"{srv.name}: {ready['failed']} pairs failed")
        samples: list[Sample] = []
        churn = asyncio.create_task(churner.request(
            "churn", "churned", timeout=a.seconds + a.hold + 120, auth=srv.visitor_auth, rate=a.rate,
            seconds=a.seconds, returning=a.returning, start=a.start, hold_ms=int(a.hold * 1000)))
        run = asyncio.create_task(talker.request("run", "ran", timeout=a.seconds + 120, rate=a.messages,
                                                 seconds=a.seconds, grace=10))
        await watch(srv, a.seconds, a.interval, samples)
        churned, ran = await churn, await run
    finally:
        await close_all(ws)
    cpu = halves(samples, lambda s: s.cpu, a.seconds)
    rss = halves(samples, lambda s: s.rss_mb, a.seconds)
    anon = halves(samples, lambda s: s.anon_mb, a.seconds)
    lat = ran.get("latencies") or []
    return {"samples": samples, "cpu_slopes": cpu, "rss_slopes": rss, "anon_slopes": anon, "churn": churned,
            "messages": {k: ran[k] for k in ("sent", "acked", "errors", "lost")} | {
                "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99)}}


def report(name: str, r: dict[str, Any], a: argparse.Namespace) -> None:
    s: list[Sample] = r["samples"]
    half = [x for x in s if x.t > a.seconds / 2]
    c, m = r["churn"], r["messages"]
    print(f"{name}: {a.rate:g} connects/s for {a.seconds:g} s + {a.messages:g} msg/s")
    print(f"  CPU slope %/min   first half {r['cpu_slopes'][0]:+.2f}   second half {r['cpu_slopes'][1]:+.2f}"
          f"   (second-half mean {sum(x.cpu for x in half) / max(1, len(half)):.1f} %)")
    print(f"  RSS slope MB/min  first half {r['rss_slopes'][0]:+.2f}   second half {r['rss_slopes'][1]:+.2f}"
          f"   (end {s[-1].rss_mb:.1f} MB)")
    print(f"  anonymous         first half {r['anon_slopes'][0]:+.2f}   second half {r['anon_slopes'][1]:+.2f}"
          f"   (end {s[-1].anon_mb:.1f} MB)")
    print(f"  fds {s[0].fds} → {s[-1].fds}; /healthz max {max(x.healthz_ms for x in s):.1f} ms;"
          f" load1 {min(x.load1 for x in s):.2f} to {max(x.load1 for x in s):.2f}")
    print(f"  churn: {c['opened']} opened, {c['sessions']} sessions, {c['started']} started, {c['resumed']} resumed,"
          f" {c['errors']} errors, {c['connect_errors']} connect errors, {c['open_at_end']} still open at the end")
    print(f"  messages: {m['sent']} sent, {m['acked']} acked, {m['errors']} errors, {m['lost']} lost;"
          f" latency p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms")


async def main_async(a: argparse.Namespace) -> None:
    backends: dict[str, Callable[[], AbstractAsyncContextManager[procs.Server]]] = {
        "sqlite": lambda: procs.gateway("ours-sqlite"),
        "postgres": lambda: procs.gateway_shared("ours-pg"),
    }
    chosen = list(backends) if a.backend == "both" else [a.backend]
    results: dict[str, dict[str, Any]] = {}
    for name in chosen:
        print(f"{name}:", flush=True)
        async with backends[name]() as srv:
            results[name] = await soak(srv, a)
    for name, r in results.items():
        report(name, r, a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--rate", type=float, default=80.0, help="visitor connects a second")
    p.add_argument("--returning", type=float, default=0.5, help="fraction of visitors coming back with a token")
    p.add_argument("--start", type=float, default=0.5,
                   help="fraction of visitors without a conversation who start one")
    p.add_argument("--hold", type=float, default=2.0, help="seconds a visitor stays connected")
    p.add_argument("--messages", type=float, default=100.0, help="messages a second of the steady stream")
    p.add_argument("--pairs", type=int, default=20, help="visitor + agent pairs carrying the stream")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
