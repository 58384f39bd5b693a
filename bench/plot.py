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

    fig, ((ax1, ax2, ax3, ax7), (ax4, ax5, ax6, ax8)) = plt.subplots(2, 4, figsize=(20, 8.4))
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
        label = "gateway, 1 node (SQLite)" if who == "ours" else "Node socket.io 4 (in-memory key check)"
        churn = [r[who] for r in results.get("churn", []) if isinstance(r, dict) and r.get(who)]
        if churn:
            ax4.plot([r["rate"] for r in churn], [r["achieved_rate"] for r in churn], style, label=label)
            ax5.plot([r["rate"] for r in churn], [r["p99_ms"] for r in churn], style, label=label)
            ax6.plot([r["rate"] for r in churn], [r["cpu_us_per_connect"] for r in churn], style, label=label)
    multichurn = [r["ours"] for r in results.get("multichurn", []) if isinstance(r, dict) and r.get("ours")]
    if multichurn:
        for ax, key in ((ax4, "achieved_rate"), (ax5, "p99_ms"), (ax6, "cpu_us_per_connect")):
            ax.plot([r["rate"] for r in multichurn], [r[key] for r in multichurn], "^:",
                    label="gateway, 2 nodes (PostgreSQL + Redis)")
    for r in results.get("churn", []):  # the machine's busy cores beside the figures
        if isinstance(r, dict) and r.get("ours"):
            ax4.annotate(f"{r['ours']['machine_busy']:.1f}", (r["ours"]["rate"], r["ours"]["achieved_rate"]),
                         fontsize=7, textcoords="offset points", xytext=(3, -10))
    cost = results.get("idlecost") or {}
    bars = [(f"{cost[w]['clients']:,}\n{'gateway' if w == 'ours' else 'Node socket.io 4'}", cost[w])
            for w in ("ours", "peer") if cost.get(w)]
    if bars:
        axi = ax2.inset_axes((0.62, 0.22, 0.35, 0.3))
        axi.bar(range(len(bars)), [b[1]["cpu_fraction"] for b in bars], color=["C0", "C1"][:len(bars)])
        axi.set_xticks(range(len(bars)), [b[0] for b in bars])
        axi.set_title(f"(f) idle cores over {bars[0][1]['seconds']:.0f} s", fontsize=7)
        axi.tick_params(labelsize=6)
    big = (results.get("bignode") or {}).get("ours") or []
    if big:
        ax2.plot([x["clients"] for x in big], [x["kb_per_conn"] for x in big], "D-.",
                 label=f"gateway, one node of {results['bignode'].get('workers')} workers (PG + Redis)")
    calls = [r for r in results.get("calls", []) if isinstance(r, dict)]
    for sender, style in (("direct", "o-"), ("aiortc", "s--")):
        rows = sorted((r for r in calls if r.get("rtp_sender", "aiortc") == sender), key=lambda r: r["n"])
        if rows:
            label = "direct RTP sender (default)" if sender == "direct" else "aiortc's sender task"
            ax7.plot([r["n"] for r in rows], [r["gateway_cpu_pct_of_core"] for r in rows], style, label=label)
            ax8.plot([r["n"] for r in rows], [r["calls_per_core"] or 0 for r in rows], style, label=label)
            for r in rows:  # RTP packets lost and the machine's busy cores beside each point
                ax7.annotate(f"{r.get('rtp_lost', '?')} lost, {r['machine_busy']:.1f}",
                             (r["n"], r["gateway_cpu_pct_of_core"]), fontsize=7, textcoords="offset points",
                             xytext=(3, -10))
                # the criterion: no packet lost, jitter < 5 ms; a point that fails it is crossed out
                ok = r.get("rtp_lost", 1) == 0 and (r.get("jitter_ms_mean") or 99) < 5
                ax8.annotate(f"jitter {r.get('jitter_ms_mean')} ms" + ("" if ok else " ✗"),
                             (r["n"], r["calls_per_core"] or 0), fontsize=7, textcoords="offset points",
                             xytext=(3, -10))
                if not ok:
                    ax8.plot([r["n"]], [r["calls_per_core"] or 0], "x", color="red", markersize=10)
    ax7.set(title="Calls: gateway CPU (labels: RTP lost, busy cores)", xlabel="bridged + recorded calls",
            ylabel="% of one core")
    ax7.axhline(100, color="grey", lw=0.8, ls="--")
    ax8.set(title="Calls per core (goal: 100; ✗ = loss or jitter ≥ 5 ms)", xlabel="bridged + recorded calls",
            ylabel="calls per core")
    ax8.axhline(100, color="grey", lw=0.8, ls="--")
    ax1.set(title="Fan-out: one conversation, N watchers", xlabel="clients watching",
            ylabel="deliveries/s (thousands)")
    ax2.set(title="Idle connections", xlabel="connected clients", ylabel="resident KB per connection")
    ax3.set(title="Small rooms: p99 visitor→agent latency", xlabel="messages/s (5,000 conversations)",
            ylabel="p99 latency (ms, log)")
    ax3.set_yscale("log")
    ax3.axhline(50, color="grey", lw=0.8, ls="--")
    ax4.set(title="(e) churn: connects/s achieved (labels: busy cores)",
            xlabel="connects/s offered", ylabel="sessions/s")
    ax5.set(title="(e) handshake to session p99", xlabel="connects/s offered", ylabel="p99 ms (log)")
    ax5.set_yscale("log")
    ax5.axhline(100, color="grey", lw=0.8, ls="--")
    ax6.set(title="(e) server CPU per connect", xlabel="connects/s offered", ylabel="µs per connect")
    for ax in (ax1, ax2, ax3, ax4, ax5, ax6, ax7, ax8):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper right" if ax is ax2 else "best")
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax6.set_ylim(bottom=0)
    ax7.set_ylim(bottom=0)
    ax8.set_ylim(bottom=0)
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
