"""Side-by-side benchmark: our gateway vs a minimal Node socket.io v4 server (the peer).

    .venv/bin/python -m bench.fanout            # the full run
    .venv/bin/python -m bench.fanout --quick    # a smoke run, < 60 s

Both servers run as their own processes on loopback, one at a time, under the same load
generator (bench/load/worker.mjs on the stock npm socket.io-client, in several processes
with their own 127.0.0.x source address). Server CPU is utime+stime from /proc/<pid>/stat
over the measured phase. Results go to stdout and to bench/results/latest.json
(`python -m bench.plot` draws docs/images/perf-fanout.png from it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from bench import procs, workloads

RESULTS = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in < 60 s")
    p.add_argument("--only", default="fanout,rooms,idle,bignode,multinode,churn,multichurn,idlecost",
                   help="comma-separated workloads: fanout, rooms, idle, bignode (idle on one node of "
                        "--node-workers processes, PG+Redis), multinode, churn (e), multichurn ((e) on two "
                        "nodes, PG+Redis), idlecost (f)")
    p.add_argument("--merge", action="store_true",
                   help="update only the workloads run in --out (the others keep their earlier run)")
    p.add_argument("--churn-rates", type=_floats, default=[500.0, 1000.0, 2000.0],
                   help="(e) visitor connects/s, one run per rate")
    p.add_argument("--churn-seconds", type=float, default=10.0)
    p.add_argument("--churn-client", choices=("lean", "stock"), default="lean",
                   help="(e) visitors on bare WebSockets speaking the packets (lean) or on socket.io-client")
    p.add_argument("--idlecost-clients", type=int, default=50_000,
                   help="(f) idle connections on ours (over 19,500: one node of --node-workers processes, PG+Redis)")
    p.add_argument("--idlecost-peer-clients", type=int, default=19_500, help="(f) on the peer (its limit here)")
    p.add_argument("--idlecost-seconds", type=float, default=300.0, help="(f) the measured idle time")
    p.add_argument("--fanout-clients", type=_ints, default=[500, 2000])
    p.add_argument("--fanout-messages", type=_ints, default=[400, 100], help="messages per fan-out size")
    p.add_argument("--rooms-pairs", type=int, default=5000, help="conversations of (b) (the issue's 5,000)")
    p.add_argument("--rooms-rates", type=_floats, default=[1000.0, 2000.0, 3000.0, 5000.0],
                   help="messages/s in total, one run per rate on the same pairs (the target: 5,000)")
    p.add_argument("--rooms-seconds", type=float, default=10.0)
    p.add_argument("--multinode-pairs", type=int, default=5000, help="conversations of (d)")
    p.add_argument("--multinode-rates", type=_floats, default=[1000.0, 2000.0, 3000.0, 5000.0],
                   help="messages/s of (d), one run per rate")
    p.add_argument("--idle-clients", type=_ints, default=[5000, 10000, 19500],
                   help="cumulative steps (each process here may hold at most `ulimit -Hn` sockets)")
    p.add_argument("--bignode-clients", type=_ints, default=[20000, 50000],
                   help="cumulative idle steps on one node of --node-workers worker processes (ours only: "
                        "one process may hold at most `ulimit -Hn` sockets, the peer is one process)")
    p.add_argument("--node-workers", type=int, default=3, help="WORKERS of the bignode workload")
    p.add_argument("--workers", type=int, default=3, help="load-generator processes")
    p.add_argument("--no-peer", action="store_true", help="only our gateway")
    p.add_argument("--timeline", action="store_true",
                   help="(b)/(d): also print when the messages over 50 ms were sent, in 100 ms windows")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    a = p.parse_args(argv)
    if a.quick:  # tiny defaults for what was not given explicitly
        given = set(argv if argv is not None else sys.argv[1:])
        quick = {"--fanout-clients": ("fanout_clients", [20]), "--fanout-messages": ("fanout_messages", [20]),
                 "--rooms-pairs": ("rooms_pairs", 20), "--rooms-rates": ("rooms_rates", [100.0]),
                 "--rooms-seconds": ("rooms_seconds", 2.0), "--idle-clients": ("idle_clients", [50]),
                 "--bignode-clients": ("bignode_clients", [60]), "--node-workers": ("node_workers", 2),
                 "--workers": ("workers", 2), "--only": ("only", "fanout,rooms,idle"),
                 "--multinode-pairs": ("multinode_pairs", 20), "--multinode-rates": ("multinode_rates", [100.0]),
                 "--churn-rates": ("churn_rates", [60.0]), "--churn-seconds": ("churn_seconds", 1.0),
                 "--idlecost-clients": ("idlecost_clients", 50),
                 "--idlecost-peer-clients": ("idlecost_peer_clients", 50),
                 "--idlecost-seconds": ("idlecost_seconds", 2.0)}
        for flag, (attr, value) in quick.items():
            if flag not in given:
                setattr(a, attr, value)
    return a


def ratio(ours: float, peer: float) -> str:
    return f"{ours / peer:.2f}x" if peer else "-"


def row(label: str, ours: str, peer: str, r: str) -> None:
    print(f"  {label:<44} {ours:>14} {peer:>14} {r:>8}", flush=True)


async def both(run: Callable[[procs.Server], Awaitable[T]], no_peer: bool, peer_first: bool) -> tuple[T, T | None]:
    """Run one workload on ours and on the peer, one after the other (alternating order)."""
    async def on_ours() -> T:
        async with procs.gateway() as srv:
            return await run(srv)

    async def on_peer() -> T:
        async with procs.peer() as srv:
            return await run(srv)

    if no_peer:
        return await on_ours(), None
    if peer_first:
        p = await on_peer()
        return await on_ours(), p
    o = await on_ours()
    return o, await on_peer()


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    only = set(a.only.split(","))
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}}
    print(f"{'':2}{'workload':<44} {'ours':>14} {'peer':>14} {'ratio':>8}")
    flip = False
    if "fanout" in only:
        out["fanout"] = []
        for n, m in zip(a.fanout_clients, a.fanout_messages, strict=False):
            fo, fp = await both(_fanout_run(n, m, a.workers), a.no_peer, flip)
            flip = not flip
            out["fanout"].append({"ours": asdict(fo), "peer": asdict(fp) if fp else None})
            pr = fp.deliveries_per_s if fp else 0.0
            pc = fp.cpu_us_per_delivery if fp else 0.0
            row(f"(a) fan-out {n} clients x {m} msgs: deliveries/s", f"{fo.deliveries_per_s:,.0f}",
                f"{pr:,.0f}", ratio(fo.deliveries_per_s, pr))
            row("    server CPU us/delivery", f"{fo.cpu_us_per_delivery:.2f}", f"{pc:.2f}",
                ratio(fo.cpu_us_per_delivery, pc))
            pe = fp.events_per_delivery if fp else 0.0
            row("    events written per delivery", f"{fo.events_per_delivery:.3f}", f"{pe:.3f}",
                ratio(fo.events_per_delivery, pe))
    if "rooms" in only:
        ros, rps = await both(_rooms_run(a), a.no_peer, flip)
        flip = not flip
        peers: list[workloads.RoomsResult | None] = list(rps) if rps else [None] * len(ros)
        out["rooms"] = [{"ours": asdict(ro), "peer": asdict(rp) if rp else None}
                        for ro, rp in zip(ros, peers, strict=True)]
        for ro, rp in zip(ros, peers, strict=True):
            _rooms_rows("(b)", ro, rp)
    if "idle" in only:
        o_idle, p_idle = await both(lambda s: workloads.idle(s, a.idle_clients, a.workers), a.no_peer, flip)
        flip = not flip
        out["idle"] = {"ours": [asdict(x) for x in o_idle], "peer": [asdict(x) for x in p_idle] if p_idle else None}
        for i, x in enumerate(o_idle):
            py = p_idle[i] if p_idle else None
            row(f"(c) idle {x.clients} clients: KB/connection", f"{x.kb_per_conn:.2f}",
                f"{py.kb_per_conn:.2f}" if py else "-", ratio(x.kb_per_conn, py.kb_per_conn) if py else "-")
    if "bignode" in only:
        # a load-generator process holds at most ~16,000 sockets here (hard fd limit 20,000)
        load = max(a.workers, -(-max(a.bignode_clients) // 16_000))
        async with procs.gateway_workers(a.node_workers) as srv:
            big = await workloads.idle(srv, a.bignode_clients, load)
        out["bignode"] = {"workers": a.node_workers, "ours": [asdict(x) for x in big]}
        for x in big:
            row(f"(c) idle {x.clients} clients, 1 node of {a.node_workers} workers: KB/conn",
                f"{x.kb_per_conn:.2f}", "-", "-")
            row("    node RSS MB (all workers)", f"{x.rss_mb:,.0f}", "-", "")
    if "multinode" in only:
        async with procs.gateway_pair() as (na, nb):
            mos = await workloads.rooms(na, a.multinode_pairs, a.multinode_rates, a.rooms_seconds, a.workers,
                                        agent_srv=nb, timeline=a.timeline, store_cpu=procs.store_cpu_seconds)
        out["multinode"] = [{"ours": asdict(mo)} for mo in mos]
        for mo in mos:
            _rooms_rows("(d) 2 nodes, PG+Redis:", mo, None)
    if "churn" in only:
        cos, cps = await both(lambda s: workloads.churn(s, a.churn_rates, a.churn_seconds, a.workers,
                                                        lean=a.churn_client == "lean"),
                              a.no_peer, flip)
        flip = not flip
        cpeers: list[workloads.ChurnResult | None] = list(cps) if cps else [None] * len(cos)
        out["churn"] = [{"ours": asdict(co), "peer": asdict(cp) if cp else None}
                        for co, cp in zip(cos, cpeers, strict=True)]
        for co, cp in zip(cos, cpeers, strict=True):
            _churn_rows("(e) churn, 1 node:", co, cp)
    if "multichurn" in only:
        async with procs.gateway_pair() as (na, nb):
            mcs = await workloads.churn(na, a.churn_rates, a.churn_seconds, a.workers, other=nb,
                                        store_cpu=procs.store_cpu_seconds, lean=a.churn_client == "lean")
        out["multichurn"] = [{"ours": asdict(mc)} for mc in mcs]
        for mc in mcs:
            _churn_rows("(e) churn, 2 nodes PG+Redis:", mc, None)
    if "idlecost" in only:
        out["idlecost"] = await _idle_cost(a)
    return out


async def _idle_cost(a: argparse.Namespace) -> dict[str, Any]:
    """(f) ours at --idlecost-clients (one node of --node-workers processes on PG + Redis past
    what one process holds), the peer at --idlecost-peer-clients."""
    n = a.idlecost_clients
    if n > workloads.SOCKETS_PER_LOAD_PROCESS:
        async with procs.gateway_workers(a.node_workers) as srv:
            o = await workloads.idle_cost(srv, n, a.idlecost_seconds, a.workers, a.node_workers)
    else:
        async with procs.gateway() as srv:
            o = await workloads.idle_cost(srv, n, a.idlecost_seconds, a.workers)
    p = None
    if not a.no_peer:
        async with procs.peer() as srv:
            p = await workloads.idle_cost(srv, a.idlecost_peer_clients, a.idlecost_seconds, a.workers)
    row(f"(f) idle {o.clients:,} (ours) / {p.clients if p else 0:,} (peer), {o.seconds:.0f} s: cores",
        f"{o.cpu_fraction:.4f}", f"{p.cpu_fraction:.4f}" if p else "-", "")
    row("    server cores per 10,000 connections", f"{o.cpu_per_10k:.4f}", f"{p.cpu_per_10k:.4f}" if p else "-",
        ratio(o.cpu_per_10k, p.cpu_per_10k) if p else "-")
    row("    server RSS MB / KB per connection", f"{o.rss_mb:,.0f} / {o.kb_per_conn:.2f}",
        f"{p.rss_mb:,.0f} / {p.kb_per_conn:.2f}" if p else "-", ratio(o.kb_per_conn, p.kb_per_conn) if p else "-")
    row("    load generators' CPU (cores busy)", f"{o.load_cpu_fraction:.3f}",
        f"{p.load_cpu_fraction:.3f}" if p else "-", "")
    row(f"    whole machine: cores busy of {o.cpus}", f"{o.machine_busy:.2f}", f"{p.machine_busy:.2f}" if p else "-",
        "")
    return {"ours": asdict(o), "peer": asdict(p) if p else None}


def _churn_rows(tag: str, o: workloads.ChurnResult, p: workloads.ChurnResult | None) -> None:
    row(f"{tag} {o.rate:,.0f} connects/s x {o.seconds:g} s: achieved/s", f"{o.achieved_rate:,.0f}",
        f"{p.achieved_rate:,.0f}" if p else "-", ratio(o.achieved_rate, p.achieved_rate) if p else "-")
    for name in ("p50_ms", "p99_ms", "max_ms"):
        ov, pv = getattr(o, name), getattr(p, name) if p else None
        row(f"    handshake to session {name}", f"{ov:.1f}", f"{pv:.1f}" if pv is not None else "-",
            ratio(ov, pv) if pv else "-")
    row("    server CPU us/connect", f"{o.cpu_us_per_connect:,.0f}", f"{p.cpu_us_per_connect:,.0f}" if p else "-",
        ratio(o.cpu_us_per_connect, p.cpu_us_per_connect) if p else "-")
    row("    server CPU (cores busy)", f"{o.cpu_fraction:.2f}", f"{p.cpu_fraction:.2f}" if p else "-", "")
    if o.store_cpu_fraction is not None:
        row("    PostgreSQL + Redis CPU (cores busy)", f"{o.store_cpu_fraction:.2f}", "-", "")
    row("    server loop thread: on a CPU / waiting for one", f"{o.loop_on_cpu:.0%} / {o.loop_waiting:.0%}",
        f"{p.loop_on_cpu:.0%} / {p.loop_waiting:.0%}" if p else "-", "")
    row("    opened/sessions/resumed/errors/connect errors",
        f"{o.opened}/{o.sessions}/{o.resumed}/{o.errors}/{o.connect_errors}",
        f"{p.opened}/{p.sessions}/{p.resumed}/{p.errors}/{p.connect_errors}" if p else "-", "")
    row("    load generators' CPU (cores busy)", f"{o.load_cpu_fraction:.2f}",
        f"{p.load_cpu_fraction:.2f}" if p else "-", "")
    row(f"    whole machine: cores busy of {o.cpus}", f"{o.machine_busy:.2f}",
        f"{p.machine_busy:.2f}" if p else "-", "")


def _fanout_run(n: int, m: int, workers: int) -> Callable[[procs.Server], Awaitable[workloads.FanoutResult]]:
    return lambda s: workloads.fanout(s, n, m, workers)


def _rooms_run(a: argparse.Namespace) -> Callable[[procs.Server], Awaitable[list[workloads.RoomsResult]]]:
    return lambda s: workloads.rooms(s, a.rooms_pairs, a.rooms_rates, a.rooms_seconds, a.workers,
                                     timeline=a.timeline)


def _rooms_rows(tag: str, o: workloads.RoomsResult, p: workloads.RoomsResult | None) -> None:
    row(f"{tag} {o.pairs} rooms @ {o.rate:,.0f}/s: achieved/s", f"{o.achieved_rate:,.0f}",
        f"{p.achieved_rate:,.0f}" if p else "-", ratio(o.achieved_rate, p.achieved_rate) if p else "-")
    for name in ("p50_ms", "p99_ms", "max_ms"):
        ov, pv = getattr(o, name), getattr(p, name) if p else None
        row(f"    latency {name}", f"{ov:.1f}", f"{pv:.1f}" if pv is not None else "-",
            ratio(ov, pv) if pv else "-")
    row("    lost / errors", f"{o.lost} / {o.errors}", f"{p.lost} / {p.errors}" if p else "-", "")
    row("    server CPU (cores busy)", f"{o.cpu_fraction:.2f}", f"{p.cpu_fraction:.2f}" if p else "-", "")
    if o.store_cpu_fraction is not None:
        row("    PostgreSQL + Redis CPU (cores busy)", f"{o.store_cpu_fraction:.2f}", "-", "")
    row("    server loop thread: on a CPU / waiting for one", f"{o.loop_on_cpu:.0%} / {o.loop_waiting:.0%}",
        f"{p.loop_on_cpu:.0%} / {p.loop_waiting:.0%}" if p else "-", "")
    row("    load generators' CPU (cores busy)", f"{o.load_cpu_fraction:.2f}",
        f"{p.load_cpu_fraction:.2f}" if p else "-", "")
    row(f"    whole machine: cores busy of {o.cpus}", f"{o.machine_busy:.2f}",
        f"{p.machine_busy:.2f}" if p else "-", "")
    row("    load generators' own loop delay p99/max ms", f"{o.client_lag_p99_ms:.1f} / {o.client_lag_max_ms:.0f}",
        f"{p.client_lag_p99_ms:.1f} / {p.client_lag_max_ms:.0f}" if p else "-", "")
    for who, r in (("ours", o), ("peer", p)):
        if r is not None and r.slow_windows:
            stalls = r.client_lag_windows  # keyed by window start, computed as slow_windows computes it
            worst = ", ".join(f"{t:.1f}s:{n}/{m:.0f}ms"
                              + (f" (load gen stalled {stalls[t]:.0f} ms)" if t in stalls else "")
                              for t, n, m in r.slow_windows[:8])
            stalled = sum(1 for t, _, _ in r.slow_windows if t in stalls)
            print(f"      {who}: {len(r.slow_windows)} windows of 100 ms with messages > 50 ms, {stalled} of them "
                  f"while a load generator stalled > 20 ms; worst (sent at, count/max): {worst}", flush=True)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    procs.raise_fd_limit()
    t0 = time.monotonic()
    out = asyncio.run(main_async(a))
    out["seconds"] = round(time.monotonic() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if a.merge and a.out.exists():  # keep the workloads not run now, noting when these were
        ran = {k: v for k, v in out.items() if k not in ("started", "args", "seconds")}
        out = procs.merge_results(a.out, ran, out["started"])
    a.out.write_text(json.dumps(out, indent=2))
    print(f"done in {round(time.monotonic() - t0, 1)} s; results in {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
