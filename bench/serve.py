"""Run `python -m gateway serve` for the bench, the fd limit raised (the event loop is the
gateway's own choice, EVENT_LOOP: uvloop by default, as in production)."""

from __future__ import annotations

import gc
import os
import sys

from bench.procs import raise_fd_limit


def main() -> int:
    raise_fd_limit()
    if os.environ.get("BENCH_GC") == "off":  # an experiment: are the latency spikes collector pauses?
        gc.disable()
    from gateway.cli import main as gateway_main

    return gateway_main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
