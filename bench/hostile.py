"""What hostile websocket input costs the gateway, before any authentication.

    .venv/bin/python -m bench.hostile            # 1 MiB of each sequence, 3 rounds
    .venv/bin/python -m bench.hostile --mib 4 --rounds 5

One gateway on embedded defaults (its own process). For each hostile sequence of
tests/transport/test_hostile_frames.py, an unauthenticated websocket writes `--mib` MiB of
it (until the server closes the connection) while a second client pings the server over
its own websocket; printed per sequence: the bytes the server took before it closed the
connection, the server's CPU seconds over the attack (utime + stime from /proc) and per
MiB sent, and the probe's ping round trip (p50 / max). There is no peer: the question is
our cost per byte, bounded or not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench import procs
from tests.transport.test_hostile_frames import MIB, SEQUENCES, attack, probe


async def run(mib: int, rounds: int) -> None:
    async with procs.gateway("ours") as srv:
        print(f"{'sequence':30s} {'server CPU s':>12s} {'CPU ms/MiB':>11s} {'probe p50 ms':>13s} {'probe max ms':>13s}")
        for name, make in SEQUENCES.items():
            data = make() * mib
            cpus: list[float] = []
            rtts: list[float] = []
            for _ in range(rounds):
                async with probe(srv.url) as got:
                    before = srv.cpu()
                    await attack(srv.url, data, 64 * 1024)
                    await asyncio.sleep(0.3)  # the server works off what it buffered
                    cpus.append(srv.cpu() - before)
                rtts += got
            cpu = statistics.median(cpus)
            print(f"{name:30s} {cpu:12.3f} {cpu * 1000 / (len(data) / MIB):11.1f} "
                  f"{statistics.median(rtts) * 1000:13.2f} {max(rtts) * 1000:13.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=1, help="MiB of each sequence per attack")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.monotonic()
    asyncio.run(run(args.mib, args.rounds))
    print(f"done in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
