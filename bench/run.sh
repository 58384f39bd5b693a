#!/usr/bin/env bash
# The benchmark in one command: our gateway vs the Node socket.io peer, same load, same run.
#   bash bench/run.sh            # full run (~30 min, calls per core and (f)'s floor included; bignode, (d), multichurn and idlecost need PostgreSQL and Redis)
#   bash bench/run.sh --quick    # smoke run (< 60 s)
#   bash bench/run.sh --only churn,multichurn,idlecost --merge   # (e) and (f) alone (~14 min), the other
#                                # workloads' figures kept in bench/results/latest.json
set -euo pipefail
cd "$(dirname "$0")/.."
(cd bench/peer && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error)
(cd bench/load && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error)
ulimit -n "$(ulimit -Hn)"
.venv/bin/python -m bench.fanout "$@"
case " $* " in
  *" --quick "*|*" --only "*) ;;
  # calls per core, both media paths back to back (~4 min)
  *) .venv/bin/python -m bench.calls --n 10 40 100 --rtp-sender aiortc direct --merge ;;
esac
.venv/bin/python -m bench.plot
case " $* " in
  *" --quick "*|*" --only "*) ;;
  *) .venv/bin/python -m bench.idlefloor --clients 10000 --seconds 120 ;;  # (f)'s floor: kernel + loop, no application
esac
