"""The workloads, each run against one server (ours or the peer) by the same load generator."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.procs import Server, machine_cpu_seconds, tenant_auths
from bench.workers import Worker, close_all, split, start_workers

WARMUP = 20
# (b)/(d): a message not at its agent this long after the last send is counted lost; one that
# arrives before is in the latencies, however late (the wait ends as soon as all arrived)
LOST_AFTER_S = 20


@dataclass
class FanoutResult:
    clients: int
    messages: int
    deliveries_per_s: float
    cpu_us_per_delivery: float
    seconds: float
    send_errors: int
    # server events the watchers received per delivered message:new (message:new itself and
    # conversation:updated summaries), over the measured phase: the work the server wrote
    events_per_delivery: float = 0.0


async def fanout(srv: Server, clients: int, messages: int, workers: int, inflight: int = 50) -> FanoutResult:
    """`clients` agents watch one conversation; one visitor posts `messages`, `inflight` at a time."""
    ws = await start_workers(srv.url, workers)
    try:
        sender = ws[0]
        conv = (await sender.request("sender", "conversation", ns="/visitor", auth=srv.visitor_auth))["id"]
        counts = split(clients, workers)
        ready = await asyncio.gather(*(w.request("watchers", "ready", ns="/agent", auth=srv.agent_auth,
                                                 count=k, conv=conv) for w, k in zip(ws, counts, strict=True)))
        failed = sum(r["failed"] for r in ready)
        if failed:
            raise RuntimeError(f"{failed} watchers failed to connect to {srv.name}")
        # warm up, then measure
        await asyncio.gather(*(w.send("expect", total=k * WARMUP) for w, k in zip(ws, counts, strict=True)))
        await sender.request("send", "sent", n=WARMUP, inflight=min(inflight, WARMUP))
        await asyncio.gather(*(w.expect("reached") for w in ws))
        await asyncio.gather(*(w.send("expect", total=k * (WARMUP + messages))
                               for w, k in zip(ws, counts, strict=True)))
        events0 = sum(c["events"] for c in await asyncio.gather(*(w.request("count", "count") for w in ws)))
        cpu0 = srv.cpu()
        await sender.send("send", n=messages, inflight=inflight)
        reached = await asyncio.gather(*(w.expect("reached", timeout=300) for w in ws))
        cpu1 = srv.cpu()
        sent = await sender.expect("sent")
        seconds = (max(r["at"] for r in reached) - sent["t0"]) / 1000
        deliveries = clients * messages
        events = sum(r["events"] for r in reached) - events0
        return FanoutResult(clients, messages, deliveries / seconds, (cpu1 - cpu0) / deliveries * 1e6, seconds,
                            int(sent["errors"]), events / deliveries)
    finally:
        await close_all(ws)


@dataclass
class IdleResult:
    clients: int
    kb_per_conn: float
    rss_mb: float


async def idle(srv: Server, steps: list[int], workers: int, settle: float = 2.0) -> list[IdleResult]:
    """Connect idle agents up to each step (cumulative); resident KB per connection at each."""
    ws = await start_workers(srv.url, workers)
    out: list[IdleResult] = []
    try:
        await asyncio.sleep(0.5)
        base = srv.rss()
        have = 0
        for n in sorted(steps):
            counts = split(n - have, workers)
            ready = await asyncio.gather(*(w.request("idle", "ready", ns="/agent", auth=srv.agent_auth, count=k,
                                                     timeout=600) for w, k in zip(ws, counts, strict=True)))
            failed = sum(r["failed"] for r in ready)
            if failed:
                raise RuntimeError(f"{failed} idle clients failed to connect to {srv.name}")
            have = n
            await asyncio.sleep(settle)
            rss = srv.rss()
            out.append(IdleResult(n, (rss - base) / n, rss / 1024))
        return out
    finally:
        await close_all(ws)


@dataclass
class RoomsResult:
    pairs: int
    rate: float
    achieved_rate: float
    sent: int
    lost: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_fraction: float
    # (d): the CPU of every postgres and redis-server process on the machine, in cores
    store_cpu_fraction: float | None = None
    # with `timeline`: the 100 ms windows (by send time) holding messages over 50 ms,
    # worst first: (window start s, messages over 50 ms, max ms)
    slow_windows: list[tuple[float, int, float]] = field(default_factory=list)
    # the load generators' own event-loop delay during the sends (the worst process): a
    # message that reaches a stalled load generator is timed late by as much
    client_lag_p99_ms: float = float("nan")
    client_lag_max_ms: float = float("nan")
    # with `timeline`: the longest load-generator stall (ms) per 100 ms window, by window start s
    client_lag_windows: dict[float, float] = field(default_factory=dict)
    # the server's main (event-loop) thread during the sends, as fractions of the time: on a
    # CPU, and runnable but waiting for one (this machine's cores are shared with the load
    # generators); with two nodes, the node that waited most
    loop_on_cpu: float = float("nan")
    loop_waiting: float = float("nan")
    # the load generators' CPU during the sends, in cores (they share the machine's cores
    # with the server), and the whole machine's busy cores (/proc/stat) of its `cpus`
    load_cpu_fraction: float = float("nan")
    machine_busy: float = float("nan")
    cpus: int = 0


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def rooms(srv: Server, pairs: int, rates: list[float], seconds: float, workers: int,
                agent_srv: Server | None = None, timeline: bool = False,
                store_cpu: Callable[[], float] | None = None) -> list[RoomsResult]:
    """`pairs` conversations of 1 visitor + 1 agent, each pair its own tenant; the visitors
    post `rate` messages/s in total, for each rate in turn on the same connections (lowest
    first, so a saturated run comes last). With `agent_srv`, agents connect to that node.
    `timeline`: also report when the slow messages were sent (are they stalls or queueing?).
    `store_cpu`: CPU seconds of the database and broker processes, read around each rate."""
    auths = await tenant_auths(srv, pairs)
    ws: list[Worker] = await start_workers(srv.url, workers, agent_srv.url if agent_srv else None)
    out: list[RoomsResult] = []
    try:
        counts = split(pairs, workers)
        starts = [sum(counts[:i]) for i in range(workers)]
        ready = await asyncio.gather(*(w.request("pairs", "ready", count=k, auths=auths[s:s + k], timeout=600)
                                       for w, k, s in zip(ws, counts, starts, strict=True)))
        failed = sum(r["failed"] for r in ready)
        if failed:
            raise RuntimeError(f"{failed} pairs failed on {srv.name}")
        servers = [srv] if agent_srv is None else [srv, agent_srv]
        for rate in sorted(rates):
            # every CPU figure is over the two readings' interval: the sends, then the wait for
            # the last deliveries (which at a saturated rate is seconds more than the sends)
            u0 = _usage(servers, ws, store_cpu)
            results: list[dict[str, Any]] = await asyncio.gather(*(
                w.request("run", "ran", rate=rate * k / pairs, seconds=seconds, grace=LOST_AFTER_S,
                          timeout=seconds + 90, timeline=timeline)
                for w, k in zip(ws, counts, strict=True)))
            u1 = _usage(servers, ws, store_cpu)
            span = u1.at - u0.at
            lat = sorted(x for r in results for x in r["latencies"])
            sent = sum(r["sent"] for r in results)
            send_s = max(r["send_seconds"] for r in results)
            on_cpu, waiting = _worst_wait(u0.sched, u1.sched, span)
            out.append(RoomsResult(pairs, rate, sent / send_s, sent, sum(r["lost"] for r in results),
                                   sum(r["errors"] for r in results), _pct(lat, 50), _pct(lat, 99),
                                   lat[-1] if lat else float("nan"), (u1.server - u0.server) / span,
                                   (u1.store - u0.store) / span if store_cpu else None,
                                   slow_windows([p for r in results for p in r.get("timeline") or []]),
                                   max(r.get("lag_p99_ms", float("nan")) for r in results),
                                   max(r.get("lag_max_ms", float("nan")) for r in results),
                                   lag_windows([w for r in results for w in r.get("lag_windows") or []]),
                                   on_cpu, waiting, (u1.load - u0.load) / span, (u1.machine - u0.machine) / span,
                                   u1.cpus))
        return out
    finally:
        await close_all(ws)


@dataclass(frozen=True)
class _Usage:
    """What the processes sharing the machine had used at one moment (CPU seconds)."""
    at: float  # time.monotonic() of the readings
    server: float  # the servers under test, their worker processes included
    sched: list[tuple[float, float]]  # each server's loop thread: (on a CPU, waiting for one)
    store: float  # PostgreSQL + Redis (0 without `store_cpu`)
    load: float  # the load generators
    machine: float  # every process (/proc/stat)
    cpus: int


def _usage(servers: list[Server], ws: list[Worker], store_cpu: Callable[[], float] | None) -> _Usage:
    machine, cpus = machine_cpu_seconds()
    return _Usage(time.monotonic(), sum(s.cpu() for s in servers), [s.sched() for s in servers],
                  store_cpu() if store_cpu else 0.0, sum(w.cpu() for w in ws), machine, cpus)


def slow_windows(points: list[list[float]], window_ms: float = 100.0,
                 slow_ms: float = 50.0) -> list[tuple[float, int, float]]:
    """(window start s, messages over `slow_ms`, max ms) per window that has any, worst first."""
    by: dict[int, list[float]] = {}
    for sent, lat in points:
        if lat > slow_ms:
            by.setdefault(int(sent // window_ms), []).append(lat)
    rows = [(w * window_ms / 1000, len(v), max(v)) for w, v in by.items()]
    return sorted(rows, key=lambda r: (-r[1], -r[2]))


def _worst_wait(before: list[tuple[float, float]], after: list[tuple[float, float]],
                seconds: float) -> tuple[float, float]:
    """(on a CPU, waiting for one) as fractions of `seconds`, of the server that waited most."""
    return max((((b[0] - a[0]) / seconds, (b[1] - a[1]) / seconds) for a, b in zip(before, after, strict=True)),
               key=lambda x: x[1])


def lag_windows(points: list[list[float]], window_ms: float = 100.0) -> dict[float, float]:
    """[window index, stall ms] from every load generator → the longest stall per window start (s)."""
    out: dict[float, float] = {}
    for w, ms in points:
        key = w * window_ms / 1000
        out[key] = max(out.get(key, 0.0), ms)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


@dataclass
class ChurnResult:
    """(e) One connect rate: visitors connect, get `session`, resume one conversation, leave."""
    nodes: int
    rate: float
    seconds: float
    achieved_rate: float  # `session`s a second, over the readings' interval (the connects and the last leave)
    opened: int
    sessions: int
    resumed: int
    errors: int  # a resume or start that failed or timed out
    connect_errors: int  # a handshake refused or timed out
    open_at_end: int  # sockets still open 10 s after the last connect (never got `session`)
    p50_ms: float  # from the client's connect call to its `session` event
    p99_ms: float
    max_ms: float
    cpu_us_per_connect: float  # the servers' CPU (both nodes') per `session`
    cpu_fraction: float  # the servers' cores busy over the interval
    load_cpu_fraction: float
    machine_busy: float
    cpus: int
    client_lag_p99_ms: float = float("nan")  # the load generators' own event-loop delay (the worst)
    store_cpu_fraction: float | None = None  # PostgreSQL + Redis (two nodes)


CHURN_SEED_PER_WORKER = 100  # returning visitors per load generator, each with one conversation


async def churn(srv: Server, rates: list[float], seconds: float, workers: int, *,
                other: Server | None = None, store_cpu: Callable[[], float] | None = None,
                lean: bool = True) -> list[ChurnResult]:
    """(e) connection churn. First each load generator makes CHURN_SEED_PER_WORKER visitors
    who start a conversation (their visitor tokens kept); then, for each rate in turn, returning
    visitors (one of those tokens each) connect with the widget key at `rate`/s in total for
    `seconds`, wait for `session` (which lists their conversation), `resume` it and
    disconnect. With `other`, visitor i connects to node i % 2 (both nodes' CPU counted).
    `lean`: the visitors are bare WebSockets speaking the protocol's packets (worker.mjs
    leanVisit), else the stock socket.io-client (which costs the load generators about twice
    the server's CPU per connect: at 1,000/s they alone would need the machine's 2 cores)."""
    servers = [srv] if other is None else [srv, other]
    urls = [s.url for s in servers]
    ws = await start_workers(srv.url, workers)
    out: list[ChurnResult] = []
    try:
        seeds = await asyncio.gather(*(w.request(
            "churn", "churned", timeout=120, auth=srv.visitor_auth, rate=CHURN_SEED_PER_WORKER / 2, seconds=2,
            returning=0, start=1, hold_ms=0, urls=urls, resume_max=1, lean=lean) for w in ws))
        bad = sum(s["errors"] + s["connect_errors"] + s["opened"] - s["started"] for s in seeds)
        if bad:
            raise RuntimeError(f"churn seed on {srv.name}: {bad} visitors failed: {seeds}")
        for rate in sorted(rates):
            u0 = _usage(servers, ws, store_cpu)
            res: list[dict[str, Any]] = await asyncio.gather(*(w.request(
                "churn", "churned", timeout=seconds + 90, auth=srv.visitor_auth, rate=rate / workers,
                seconds=seconds, returning=1, start=0, hold_ms=0, urls=urls, resume_max=1, lean=lean)
                for w in ws))
            u1 = _usage(servers, ws, store_cpu)
            span = u1.at - u0.at
            lat = sorted(x for r in res for x in r["session_ms"])
            sessions = sum(r["sessions"] for r in res)
            cpu = u1.server - u0.server
            out.append(ChurnResult(
                len(servers), rate, seconds, sessions / span, sum(r["opened"] for r in res), sessions,
                sum(r["resumed"] for r in res), sum(r["errors"] for r in res),
                sum(r["connect_errors"] for r in res), sum(r["open_at_end"] for r in res),
                _pct(lat, 50), _pct(lat, 99), lat[-1] if lat else float("nan"),
                cpu / max(1, sessions) * 1e6, cpu / span, (u1.load - u0.load) / span,
                (u1.machine - u0.machine) / span, u1.cpus, max(r["lag_p99_ms"] for r in res),
                (u1.store - u0.store) / span if store_cpu else None))
        return out
    finally:
        await close_all(ws)


@dataclass
class IdleCostResult:
    """(f) What `clients` idle connections cost over `seconds` with the default heartbeat."""
    clients: int
    seconds: float
    cpu_fraction: float  # the server's cores busy (every worker process of the node)
    cpu_per_10k: float  # the same per 10,000 connections
    rss_mb: float  # the node's resident memory at the end
    kb_per_conn: float
    load_cpu_fraction: float  # the load generators (they answer the pings)
    machine_busy: float
    cpus: int
    node_workers: int = 1


SOCKETS_PER_LOAD_PROCESS = 16_000  # a process here may hold at most 20,000 fds (`ulimit -Hn`)


async def idle_cost(srv: Server, clients: int, seconds: float, workers: int, node_workers: int = 1,
                    settle: float = 5.0) -> IdleCostResult:
    """(f) `clients` idle agent connections (the server's default ping interval and timeout;
    the stock client answers each ping); the server's CPU and the machine's busy cores over
    `seconds` after a `settle` pause, RSS at the end."""
    ws = await start_workers(srv.url, max(workers, -(-clients // SOCKETS_PER_LOAD_PROCESS)))
    try:
        await asyncio.sleep(0.5)
        base = srv.rss()
        ready = await asyncio.gather(*(w.request("idle", "ready", ns="/agent", auth=srv.agent_auth, count=k,
                                                 timeout=900) for w, k in zip(ws, split(clients, len(ws)),
                                                                              strict=True)))
        failed = sum(r["failed"] for r in ready)
        if failed:
            raise RuntimeError(f"{failed} idle clients failed to connect to {srv.name}")
        await asyncio.sleep(settle)
        u0 = _usage([srv], ws, None)
        await asyncio.sleep(seconds)
        u1 = _usage([srv], ws, None)
        span = u1.at - u0.at
        rss = srv.rss()
        cores = (u1.server - u0.server) / span
        return IdleCostResult(clients, span, cores, cores / clients * 10_000, rss / 1024, (rss - base) / clients,
                              (u1.load - u0.load) / span, (u1.machine - u0.machine) / span, u1.cpus, node_workers)
    finally:
        await close_all(ws)
