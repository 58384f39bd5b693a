"""`python -m bench.calls --n 10 50 100`: N concurrent bridged + recorded calls on loopback.

`--rtp-sender direct aiortc` runs each N with each of the gateway's two media paths, back to
back; `--merge` adds the rows to bench/results/latest.json under "calls" (the plot draws them).

The gateway runs in its own process (`python -m gateway serve`, SQLite in a temp DATA_DIR,
recording on); the callers and agents run in a second process (bench/calls/clients.py).
Gateway CPU is read from /proc/<pid>/stat (utime + stime, all threads) over the
measurement window. The machine is shared: treat every figure as a range, not a point.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.procs import cpu_seconds, free_port, machine_cpu_seconds, merge_results

ROOT = Path(__file__).resolve().parents[2]


def run_one(n: int, window: float, profile: Path | None = None, rtp_sender: str = "direct") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        env = {**os.environ, "DATA_DIR": tmp, "PORT": str(free_port()), "HOST": "127.0.0.1",
               "CALL_HOST_ADDRESSES": "127.0.0.1", "CALL_RING_TIMEOUT": "30",
               # every bench caller comes from 127.0.0.1: lift the per-IP conversation rate limit
               "RATE_IP_CONVERSATIONS_PER_MIN": "100000", "RATE_IP_CONVERSATIONS_BURST": "100000",
               "CALL_RTP_SENDER": rtp_sender}
        for k in ("DATABASE_URL", "REDIS_URL", "MASTER_KEY", "ICE_SERVERS"):
            env.pop(k, None)
        created = subprocess.run([sys.executable, "-m", "gateway", "tenant", "create", "--name", "Bench"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        tenant = json.loads(created.stdout)
        url = f"http://127.0.0.1:{env['PORT']}"
        with open(Path(tmp) / "gateway.log", "wb") as log:
            gw = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
            try:
                for _ in range(100):
                    try:
                        urllib.request.urlopen(url + "/healthz", timeout=1).read()
                        break
                    except OSError:
                        time.sleep(0.1)
                cl = subprocess.Popen(
                    [sys.executable, "-m", "bench.calls.clients", "--url", url, "--key", tenant["widget_key"],
                     "--token", tenant["admin_token"], "--n", str(n), "--window", str(window)],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
                assert cl.stdout is not None
                c0 = t0 = c1 = t1 = l0 = l1 = m0 = m1 = 0.0
                cpus = 0
                result: dict[str, Any] = {}
                spy: subprocess.Popen[bytes] | None = None
                for line in cl.stdout:
                    if line.startswith("window-start"):
                        c0, t0 = cpu_seconds(gw.pid), time.monotonic()
                        l0, (m0, cpus) = cpu_seconds(cl.pid), machine_cpu_seconds()
                        if profile is not None:  # py-spy samples the gateway over the window
                            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                                                    str(gw.pid), "-d", str(int(window)), "-r", "250", "-f", "raw",
                                                    "-o", str(profile), "--nonblocking"], stdout=subprocess.DEVNULL)
                    elif line.startswith("window-end"):
                        c1, t1 = cpu_seconds(gw.pid), time.monotonic()
                        l1, (m1, cpus) = cpu_seconds(cl.pid), machine_cpu_seconds()
                    elif line.startswith("{"):
                        result = json.loads(line)
                cl.wait(60)
                if spy is not None:
                    spy.wait(60)
                if not result:
                    raise RuntimeError(f"client failed (exit {cl.returncode})")
                core = 100.0 * (c1 - c0) / (t1 - t0)
                result.update({"rtp_sender": rtp_sender, "gateway_cpu_pct_of_core": round(core, 1),
                               "gateway_cpu_pct_per_call": round(core / n, 2),
                               # calls one core would carry at this CPU per call
                               "calls_per_core": round(100.0 * n / core, 1) if core else None,
                               # per packet that reached an endpoint, and the calls a core would carry at
                               # that cost with every packet through (a call is 2 x 50 packets/s):
                               # meaningful also when packets were lost (an overloaded machine)
                               "gateway_us_per_packet": round((c1 - c0) / result["received"] * 1e6, 1)
                               if result.get("received") else None,
                               "calls_per_core_full_rate": round(result["received"] / (c1 - c0) / 100, 1)
                               if c1 > c0 and result.get("received") else None,
                               # the callers' process (it shares the machine) and the whole machine
                               "clients_cores": round((l1 - l0) / (t1 - t0), 2),
                               "machine_busy": round((m1 - m0) / (t1 - t0), 2), "cpus": cpus})
                return result
            finally:
                gw.send_signal(signal.SIGTERM)
                try:
                    gw.wait(15)
                except subprocess.TimeoutExpired:
                    gw.kill()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.calls")
    ap.add_argument("--n", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--window", type=float, default=10.0, help="measurement window in seconds (keep <= 20)")
    ap.add_argument("--profile", type=Path, help="py-spy the gateway over the window (raw stacks) to this file")
    ap.add_argument("--merge", nargs="?", const=ROOT / "bench" / "results" / "latest.json", type=Path,
                    help="add the rows to this results file under 'calls' (default bench/results/latest.json)")
    ap.add_argument("--rtp-sender", nargs="+", choices=("direct", "aiortc"), default=["direct"],
                    help="the gateway's CALL_RTP_SENDER; several: each N with each, back to back")
    a = ap.parse_args()
    print(f"{'sender':>6} {'N':>4} {'setup s':>8} {'gw % core':>10} {'% core/call':>12} {'calls/core':>10}"
          f" {'loss %':>7} {'RTP lost':>8} "
          f"{'jitter ms (mean/max)':>21} {'µs/packet':>9} {'calls/core@0%loss':>17} {'clients cores':>13}"
          f" {'machine busy':>12}")
    rows: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    for n in a.n:
        for sender in a.rtp_sender:
            prof = a.profile.with_suffix(f".{sender}.{n}.txt") if a.profile else None
            r = run_one(n, min(a.window, 20.0), prof, sender)
            print(f"{sender:>6} {n:>4} {r['setup_s']:>8} {r['gateway_cpu_pct_of_core']:>10}"
                  f" {r['gateway_cpu_pct_per_call']:>12} {r['calls_per_core']!s:>10} {r['loss_pct']:>7}"
                  f" {r['rtp_lost']:>8} {r['jitter_ms_mean']!s:>10}/{r['jitter_ms_max']!s:<10}"
                  f" {r['gateway_us_per_packet']!s:>9} {r['calls_per_core_full_rate']!s:>17}"
                  f" {r['clients_cores']:>13} {r['machine_busy']:>8} of {r['cpus']}", flush=True)
            print("  " + json.dumps(r), flush=True)
            rows.append(r)
    if a.merge is not None:  # the other workloads' figures stay as they are
        a.merge.write_text(json.dumps(merge_results(a.merge, {"calls": rows}, started), indent=2))
        print(f"merged {len(rows)} rows into {a.merge}")


if __name__ == "__main__":
    main()
