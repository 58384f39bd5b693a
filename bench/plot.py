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

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for who, style in (("ours", "o-"), ("peer", "s--")):
        pts = [(r[who]["clients"], r[who]["deliveries_per_s"]) for r in results.get("fanout", []) if r.get(who)]
        if pts:
            ax1.plot([p[0] for p in pts], [p[1] / 1000 for p in pts], style,
                     label="gateway (lean transport)" if who == "ours" else "Node socket.io 4")
        idle = (results.get("idle") or {}).get(who) or []
        if idle:
            ax2.plot([x["clients"] for x in idle], [x["kb_per_conn"] for x in idle], style,
                     label="gateway (lean transport)" if who == "ours" else "Node socket.io 4")
    ax1.set(title="Fan-out: one conversation, N watchers", xlabel="clients watching",
            ylabel="deliveries/s (thousands)")
    ax2.set(title="Idle connections", xlabel="connected clients", ylabel="resident KB per connection")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_ylim(bottom=0)
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
