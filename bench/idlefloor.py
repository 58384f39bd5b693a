"""`python -m bench.idlefloor [--clients 10000] [--seconds 60] [--interval 25]`: what idling
costs below any application — the floor under workload (f).

The same bytes the gateway's heartbeat moves, with no Engine.IO, no websocket parsing and
no timer wheel: a server process on uvloop (the gateway's default loop) writes the 3-byte
websocket ping frame (`2`) to each of `--clients` TCP connections once every `--interval`
seconds (spread evenly: a batch every `--batch` seconds, 1 by default as the gateway's
heartbeat tick), and reads the 7-byte masked pong frame each client process answers
with, discarding it. One `write` and one `read` system call per
connection per interval, as in the gateway (counted with `strace -c` on both).

Printed: the server's CPU (cores busy: its threads' time on a CPU, in nanoseconds from
`/proc/<pid>/task/*/schedstat`, over `--seconds`
after the clients are connected and a settle pause), per 10,000 connections, and that rate
scaled to 50,000 — the share of (f)'s budget the kernel's loopback TCP and the event loop
take before the application does anything. The client processes' CPU is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from bench.procs import cpu_seconds_exact, free_port, raise_fd_limit

PING = b"\x81\x012"  # server → client: an unmasked text frame "2" (Engine.IO ping)
PONG = b"\x81\x81R\xfa\xa5\x1da"  # client → server: a masked text frame "3" (Engine.IO pong)
PER_CLIENT_PROCESS = 15_000  # connections per client process (a process may hold 20,000 fds here)


class _Conn(asyncio.Protocol):
    def __init__(self, conns: list[asyncio.Transport]) -> None:
        self._conns = conns

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._conns.append(transport)  # type: ignore[arg-type]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        pass  # the pong: read by the loop, not looked at


async def _serve(port: int, interval: float, batch: float) -> None:
    conns: list[asyncio.Transport] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(conns), "127.0.0.1", port, backlog=4096)
    print("listening", flush=True)
    i = 0
    async with server:
        while True:
            await asyncio.sleep(batch)
            n = len(conns)
            if n:
                for _ in range(max(1, round(n * batch / interval))):
                    conns[i % n].write(PING)
                    i += 1


class _Client(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(PONG * data.count(PING))


async def _clients(port: int, count: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(count):
        await loop.create_connection(_Client, "127.0.0.1", port)
    print("connected", flush=True)
    await asyncio.Event().wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--interval", type=float, default=25.0, help="seconds between two pings of one connection")
    p.add_argument("--batch", type=float, default=1.0,
                   help="seconds between two batches of pings (the gateway's heartbeat tick: 1 s)")
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--role", choices=("run", "server", "clients"), default="run", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    raise_fd_limit()
    import uvloop

    if a.role == "server":
        uvloop.run(_serve(a.port, a.interval, a.batch))
        return 0
    if a.role == "clients":
        uvloop.run(_clients(a.port, a.clients))
        return 0
    port = free_port()
    me = [sys.executable, "-m", "bench.idlefloor", "--port", str(port), "--interval", str(a.interval),
          "--batch", str(a.batch)]
    server = subprocess.Popen([*me, "--role", "server"], stdout=subprocess.PIPE, text=True)
    clients: list[subprocess.Popen[str]] = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        left = a.clients
        while left > 0:
            k = min(left, PER_CLIENT_PROCESS)
            clients.append(subprocess.Popen([*me, "--role", "clients", "--clients", str(k)],
                                            stdout=subprocess.PIPE, text=True))
            left -= k
        for c in clients:
            assert c.stdout is not None and c.stdout.readline().strip() == "connected"
        time.sleep(a.settle)  # a bench's measuring window, not a test's synchronisation
        t0, s0 = time.monotonic(), cpu_seconds_exact(server.pid)
        l0 = sum(cpu_seconds_exact(c.pid) for c in clients)
        time.sleep(a.seconds)
        span = time.monotonic() - t0
        cores = (cpu_seconds_exact(server.pid) - s0) / span
        load = (sum(cpu_seconds_exact(c.pid) for c in clients) - l0) / span
    finally:
        for proc in (*clients, server):
            proc.kill()
            proc.wait()
    per_10k = cores / a.clients * 10_000
    print(f"idle floor (uvloop, raw ping/pong frames, a ping every {a.interval:g} s in batches every {a.batch:g} s): "
          f"{a.clients:,} connections, {span:.0f} s")
    print(f"  server cores busy          {cores:.4f}")
    print(f"  per 10,000 connections     {per_10k:.4f}")
    print(f"  scaled to 50,000           {per_10k * 5:.4f}")
    print(f"  client processes' cores    {load:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
