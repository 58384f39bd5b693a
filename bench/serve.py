"""Run `python -m gateway serve` for the bench, the fd limit raised (the event loop is the
gateway's own choice, EVENT_LOOP: uvloop by default, as in production)."""

from __future__ import annotations

import gc
import os
import resource
import sys


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if os.environ.get("BENCH_GC") == "off":  # an experiment: are the latency spikes collector pauses?
        gc.disable()
    from gateway.cli import main as gateway_main

    return gateway_main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
