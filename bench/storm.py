"""A disconnect storm: what the connections that stay see while thousands of others leave.

    .venv/bin/python -m bench.storm                 # 5,000 pairs (10,000 clients), ours and the peer
    .venv/bin/python -m bench.storm --pairs 500 --no-peer

The small-rooms setup of (b) (`pairs` conversations of 1 visitor + 1 agent, each pair its
own tenant, on the stock npm client in several processes) plus one probe pair on
python-socketio's client whose visitor sends a message every `--interval` ms. Then every
load-generator client closes at once (each sends its namespace's DISCONNECT and closes its
socket). Printed, for each server: the probe's visitor→agent latency over the
`--window` seconds from the storm's start (p50 / p99 / max, and how many were sent and
lost) and the same before the storm; for ours also how long until the node had let every
leaving connection go (`izh_open_connections` back at the probe's 2, read every 0.25 s) the loop's stalls
over 20 ms meanwhile (`izh_loop_stalls_total` and `izh_loop_stall_max_seconds`, with
`LOOP_STALL_MS=20`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio

from bench import procs
from bench.workers import close_all, split, start_workers


@dataclass
class Probe:
    visitor: socketio.AsyncClient
    agent: socketio.AsyncClient
    conv: str
    sent: dict[str, float]  # client id → when, until it arrives
    latencies: list[tuple[float, float]]  # (sent at, ms)
    sends: list[float]  # when each message was sent


async def open_probe(url: str, auth: dict[str, dict[str, str]]) -> Probe:
    v = socketio.AsyncClient(reconnection=False)
    a = socketio.AsyncClient(reconnection=False)
    await v.connect(url, namespaces=["/visitor"], auth=auth["visitor"], transports=["websocket"])
    st = await v.call("conversation:start", {}, namespace="/visitor", timeout=30)
    if not st.get("ok"):
        raise RuntimeError(f"probe: conversation:start: {st}")
    conv = st["conversation"]["id"]
    await a.connect(url, namespaces=["/agent"], auth=auth["agent"], transports=["websocket"])
    probe = Probe(v, a, conv, {}, [], [])

    def on_message(m: dict[str, Any]) -> None:
        at = probe.sent.pop(m.get("client_id", ""), None)
        if at is not None:
            now = time.monotonic()
            probe.latencies.append((at, (now - at) * 1000))

    a.on("message:new", on_message, namespace="/agent")
    w = await a.call("conversation:watch", {"conversation_id": conv}, namespace="/agent", timeout=30)
    if not w.get("ok"):
        raise RuntimeError(f"probe: conversation:watch: {w}")
    return probe


def _ignore(*_: Any) -> None:
    return None


async def probe_sends(probe: Probe, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        cid = str(uuid.uuid4())
        probe.sent[cid] = now = time.monotonic()
        probe.sends.append(now)
        # with an ack id, as every client sends it (the peer's handler calls the ack)
        await probe.visitor.emit("message:send", {"conversation_id": probe.conv, "client_id": cid, "text": "probe"},
                                 namespace="/visitor", callback=_ignore)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


GAUGES = ("izh_open_connections", "izh_loop_stalls_total", "izh_loop_stall_max_seconds",
          "izh_gc_pause_seconds_total", "izh_gc_collections_gen2_total")


async def gauges(http: aiohttp.ClientSession, srv: procs.Server) -> dict[str, float]:
    """GAUGES of our node, from its /metrics."""
    found: dict[str, float] = {}
    async with http.get(srv.url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            for name in GAUGES:
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    found[name] = float(line.rsplit(" ", 1)[1])
    return found


def summary(points: list[tuple[float, float]], sent: int) -> str:
    lat = sorted(ms for _, ms in points)
    if not lat:
        return f"sent {sent}, none arrived"
    p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]  # noqa: E731
    return f"p50 / p99 / max {p(0.5):.1f} / {p(0.99):.1f} / {lat[-1]:.1f} ms, {len(lat)} of {sent} arrived"


async def storm(srv: procs.Server, pairs: int, workers: int, interval: float, window: float) -> dict[str, Any]:
    auths = await procs.tenant_auths(srv, pairs + 1)
    ws = await start_workers(srv.url, workers)
    closed = False
    try:
        counts = split(pairs, workers)
        starts = [sum(counts[:i]) for i in range(workers)]
        ready = await asyncio.gather(*(w.request("pairs", "ready", count=k, auths=auths[s:s + k], timeout=600)
                                       for w, k, s in zip(ws, counts, starts, strict=True)))
        if sum(r["failed"] for r in ready):
            raise RuntimeError(f"{srv.name}: pairs failed")
        probe = await open_probe(srv.url, auths[pairs])
        stop = asyncio.Event()
        sender = asyncio.create_task(probe_sends(probe, interval, stop))
        try:
            await asyncio.sleep(window)  # before: the same probe, no storm
            t0 = time.monotonic()
            ours = srv.env is not None
            async with aiohttp.ClientSession() as http:
                g0 = await gauges(http, srv) if ours else {}
                closing = asyncio.create_task(close_all(ws))
                closed = True
                settled: float | None = None
                while time.monotonic() - t0 < window:
                    if ours and settled is None:
                        with contextlib.suppress(aiohttp.ClientError):
                            if (await gauges(http, srv)).get("izh_open_connections") == 2:
                                settled = time.monotonic() - t0
                    await asyncio.sleep(0.25)  # a scrape walks every conversation: not too often
                g1 = await gauges(http, srv) if ours else {}
            await closing
            stop.set()
            await sender
            await asyncio.sleep(1.0)  # the last ones arrive (or count as lost)
        finally:
            stop.set()
            await probe.visitor.disconnect()
            await probe.agent.disconnect()
        before = [x for x in probe.latencies if x[0] < t0]
        sent_before = sum(1 for at in probe.sends if at < t0)
        during = [x for x in probe.latencies if t0 <= x[0] < t0 + window]
        sent_during = sum(1 for at in probe.sends if t0 <= at < t0 + window)
        return {"before": summary(before, sent_before), "during": summary(during, sent_during),
                "settled_s": settled if ours else None,
                "stalls": g1.get("izh_loop_stalls_total", 0) - g0.get("izh_loop_stalls_total", 0),
                "stall_max_before_s": g0.get("izh_loop_stall_max_seconds", 0.0),
                "stall_max_after_s": g1.get("izh_loop_stall_max_seconds", 0.0),
                "gc_s": g1.get("izh_gc_pause_seconds_total", 0) - g0.get("izh_gc_pause_seconds_total", 0),
                "gc_full": g1.get("izh_gc_collections_gen2_total", 0) - g0.get("izh_gc_collections_gen2_total", 0)}
    finally:
        if not closed:
            await close_all(ws)


async def main_async(a: argparse.Namespace) -> None:
    out: dict[str, dict[str, Any]] = {}
    async with procs.gateway(env_extra={"LOOP_STALL_MS": "20"}) as srv:
        out["ours"] = await storm(srv, a.pairs, a.workers, a.interval / 1000, a.window)
    if not a.no_peer:
        async with procs.peer() as srv:
            out["peer"] = await storm(srv, a.pairs, a.workers, a.interval / 1000, a.window)
    print(f"disconnect storm: {a.pairs * 2:,} clients leave at once; a probe pair sends every {a.interval:.0f} ms")
    for name, r in out.items():
        print(f"  {name:5} probe before the storm     {r['before']}")
        print(f"  {name:5} probe during {a.window:.0f} s of storm  {r['during']}")
        if name == "ours":
            settled = f"{r['settled_s']:.2f} s" if r["settled_s"] is not None else f"not within {a.window:.0f} s"
            print(f"  ours  all gone after {settled}; loop stalls over 20 ms meanwhile: {r['stalls']:.0f}, the"
                  f" longest since start {r['stall_max_before_s'] * 1000:.0f} ms before the storm,"
                  f" {r['stall_max_after_s'] * 1000:.0f} ms after; garbage collection {r['gc_s'] * 1000:.0f} ms"
                  f" ({r['gc_full']:.0f} full)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--workers", type=int, default=3, help="load-generator processes")
    p.add_argument("--interval", type=float, default=10.0, help="ms between the probe's messages")
    p.add_argument("--window", type=float, default=5.0, help="seconds measured before and from the storm")
    p.add_argument("--no-peer", action="store_true")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
