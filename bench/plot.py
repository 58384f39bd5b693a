"""Draw docs/images/perf-fanout.png from bench/results/latest.json (python -m bench.plot)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for who, style in (("ours", "o-"), ("peer", "s--")):
        pts = [(r[who]["clients"], r[who]["deliveries_per_s"]) for r in results.get("fanout", []) if r.get(who)]
        if pts:
            ax1.plot([p[0] for p in pts], [p[1] / 1000 for p in pts], style,
                     label="gateway (lean transport)" if who == "ours" else "Node socket.io 4")
        rooms = [r[who] for r in results.get("rooms", []) if isinstance(r, dict) and r.get(who)]
        if rooms:
            ax3.plot([r["rate"] for r in rooms], [r["p99_ms"] for r in rooms], style,
                     label="gateway (SQLite, stored)" if who == "ours" else "Node socket.io 4 (no store)")
        multi = [r[who] for r in results.get("multinode", []) if isinstance(r, dict) and r.get(who)]
        if multi:
            ax3.plot([r["rate"] for r in multi], [r["p99_ms"] for r in multi], "^:",
                     label="gateway, 2 nodes (PostgreSQL + Redis)")
        idle = (results.get("idle") or {}).get(who) or []
        if idle:
            ax2.plot([x["clients"] for x in idle], [x["kb_per_conn"] for x in idle], style,
                     label="gateway (lean transport)" if who == "ours" else "Node socket.io 4")
    big = (results.get("bignode") or {}).get("ours") or []
    if big:
        ax2.plot([x["clients"] for x in big], [x["kb_per_conn"] for x in big], "D-.",
                 label=f"gateway, one node of {results['bignode'].get('workers')} workers (PG + Redis)")
    ax1.set(title="Fan-out: one conversation, N watchers", xlabel="clients watching",
            ylabel="deliveries/s (thousands)")
    ax2.set(title="Idle connections", xlabel="connected clients", ylabel="resident KB per connection")
    ax3.set(title="Small rooms: p99 visitor→agent latency", xlabel="messages/s (5,000 conversations)",
            ylabel="p99 latency (ms, log)")
    ax3.set_yscale("log")
    ax3.axhline(50, color="grey", lw=0.8, ls="--")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    fig.suptitle(f"bench run {results.get('started', '')} (loopback, 2 cores)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.plot")
    p.add_argument("results", nargs="?", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "perf-fanout.png")
    a = p.parse_args()
    plot(json.loads(a.results.read_text()), a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
