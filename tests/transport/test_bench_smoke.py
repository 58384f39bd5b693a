"""The bench harness runs end to end at tiny sizes (a smoke test, not a timed assertion)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.node, pytest.mark.slow]


async def test_bench_quick_run(tmp_path: Path) -> None:
    assert shutil.which("node"), "node is required"
    out = tmp_path / "latest.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fanout", "--quick", "--workers", "1", "--fanout-clients", "20",
        "--idle-clients", "20", "--out", str(out), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, text.decode()[-3000:]
    res = json.loads(out.read_text())
    for who in ("ours", "peer"):
        fo = res["fanout"][0][who]
        assert fo["clients"] == 20 and fo["deliveries_per_s"] > 0 and fo["send_errors"] == 0
        ro = res["rooms"][0][who]
        assert ro["lost"] == 0 and ro["sent"] > 0
        # the load generator's own CPU and the machine's busy cores are read around each rate
        assert 0 < ro["load_cpu_fraction"] <= ro["cpus"] and ro["cpus"] >= 1
        assert ro["load_cpu_fraction"] <= ro["machine_busy"] + 0.2 and ro["machine_busy"] <= ro["cpus"] + 0.05
        assert res["idle"][who][0]["clients"] == 20
    assert "ratio" in text.decode()


async def test_bench_churn_and_idle_cost_quick_run(tmp_path: Path) -> None:
    """(e) connection churn and (f) the cost of idling, both servers, merged into --out."""
    out = tmp_path / "latest.json"
    out.write_text(json.dumps({"started": "earlier", "fanout": [{"kept": True}]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fanout", "--quick", "--only", "churn,idlecost", "--workers", "1", "--merge",
        "--out", str(out), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, text.decode()[-3000:]
    res = json.loads(out.read_text())
    assert res["fanout"] == [{"kept": True}] and set(res["merged_runs"]) == {"churn", "idlecost"}
    for who in ("ours", "peer"):
        ch = res["churn"][0][who]
        # every visitor came back with a token, got its conversation in `session` and resumed it
        assert ch["opened"] == ch["sessions"] == ch["resumed"] > 0, ch
        assert ch["errors"] == ch["connect_errors"] == ch["open_at_end"] == 0, ch
        assert 0 < ch["p50_ms"] <= ch["p99_ms"] and ch["cpu_us_per_connect"] > 0 and ch["achieved_rate"] > 0
        assert 0 < ch["load_cpu_fraction"] <= ch["machine_busy"] + 0.2 and ch["cpus"] >= 1
        ic = res["idlecost"][who]
        assert ic["clients"] == 50 and ic["seconds"] >= 2 and ic["rss_mb"] > 0 and ic["cpus"] >= 1
        assert ic["cpu_fraction"] >= 0 and ic["machine_busy"] <= ic["cpus"] + 0.05
    assert "(e) churn, 1 node" in text.decode() and "(f) idle" in text.decode()


async def test_peer_refuses_an_unknown_widget_key(tmp_path: Path) -> None:
    """The peer's in-memory key check: churn with a wrong key gets connect errors, no session."""
    from bench import procs, workloads

    async with procs.peer() as srv:
        srv.visitor_auth = {"widget_key": "not-a-key"}
        with pytest.raises(RuntimeError, match="visitors failed"):
            await workloads.churn(srv, [10.0], 0.5, 1)


@pytest.mark.postgres
@pytest.mark.redis
async def test_bench_multichurn_quick_run(tmp_path: Path) -> None:
    """(e) on two nodes sharing PostgreSQL and Redis: visitors alternate between the nodes."""
    out = tmp_path / "multi.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fanout", "--quick", "--only", "multichurn", "--workers", "1",
        "--out", str(out), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, text.decode()[-3000:]
    ch = json.loads(out.read_text())["multichurn"][0]["ours"]
    assert ch["nodes"] == 2 and ch["opened"] == ch["sessions"] == ch["resumed"] > 0, ch
    assert ch["errors"] == ch["connect_errors"] == 0 and ch["store_cpu_fraction"] is not None


@pytest.mark.postgres
@pytest.mark.redis
async def test_bench_bignode_quick_run(tmp_path: Path) -> None:
    """The idle workload on one node of two worker processes (PostgreSQL + Redis)."""
    out = tmp_path / "big.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fanout", "--quick", "--only", "bignode", "--workers", "1",
        "--bignode-clients", "30,60", "--out", str(out), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, text.decode()[-3000:]
    res = json.loads(out.read_text())["bignode"]
    assert res["workers"] == 2 and [x["clients"] for x in res["ours"]] == [30, 60]
    assert all(x["rss_mb"] > 0 for x in res["ours"])


@pytest.mark.parametrize("backend", [[], ["--postgres"]], ids=["sqlite", "postgres"])
async def test_store_bench_quick_run(backend: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.store", "--messages", "300", "--conversations", "50", "--batch", "1",
        "--batch", "8", *backend, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, text.decode()[-3000:]
    lines = text.decode().splitlines()
    assert len(lines) == 2 and all("µs/msg" in line for line in lines), lines
    assert "batch ~  1: 300 messages" in lines[0]
    loop = [float(re.search(r"loop thread +([0-9.]+)\)", line)[1]) for line in lines]  # type: ignore[index]
    assert all(x > 0 for x in loop), lines
    if not backend:  # SQLite: the WAL and checkpoint bytes this process wrote, per message
        written = [float(re.search(r"written +([0-9.]+) KB/msg", line)[1]) for line in lines]  # type: ignore[index]
        assert all(w > 0 for w in written), lines


async def test_storm_bench_quick_run() -> None:
    """bench/storm.py end to end, both servers: the probe's messages all arrive."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.storm", "--pairs", "20", "--workers", "1", "--window", "1", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    out = text.decode()
    assert proc.returncode == 0, out[-3000:]
    rows = re.findall(r"(ours|peer)\s+probe (?:before|during).*?(\d+) of (\d+) arrived", out)
    assert len(rows) == 4, out
    assert all(int(got) == int(sent) > 0 for _, got, sent in rows), out
    assert re.search(r"ours  all gone after \d+\.\d+ s", out), out


async def test_resp_bench_quick_run() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.resp", "--replies", "2000", "--payload", "100", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, text.decode()[-3000:]
    lines = text.decode().splitlines()
    assert len(lines) == 3 and all("2,000 replies of 100 bytes" in line for line in lines), lines
    assert all(float(re.search(r"CPU ([0-9.]+) µs/reply", line)[1]) > 0 for line in lines), lines  # type: ignore[index]


async def test_calls_bench_quick_run() -> None:
    """bench/calls end to end at N = 2: the row and its JSON carry loss, jitter, calls per core,
    the callers' CPU and the machine's busy cores."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.calls", "--n", "2", "--window", "2", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 110)
    assert proc.returncode == 0, text.decode()[-3000:]
    rows = [json.loads(line) for line in text.decode().splitlines() if line.strip().startswith("{")]
    assert len(rows) == 1, text.decode()
    r = rows[0]
    assert r["n"] == 2 and r["sent"] > 0 and r["received"] > 0 and r["loss_pct"] is not None
    assert r["rtp_sender"] == "direct" and r["rtp_received"] > 0 and r["rtp_lost"] >= 0
    assert r["calls_per_core"] is None or r["calls_per_core"] > 0
    assert r["gateway_us_per_packet"] > 0 and r["calls_per_core_full_rate"] > 0
    assert r["clients_cores"] > 0 and 0 < r["machine_busy"] <= r["cpus"] + 0.05


async def test_idle_floor_bench_quick_run() -> None:
    """bench.idlefloor end to end: 200 raw connections pinged every 0.2 s for 2 s; the server
    does read the pongs (its CPU is above zero: counted in nanoseconds, so a light process is
    not rounded to 0 clock ticks as it was once in CI) and the rows are printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.idlefloor", "--clients", "200", "--seconds", "2", "--interval", "0.2",
        "--batch", "0.1", "--settle", "0", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    text, _ = await asyncio.wait_for(proc.communicate(), 60)
    out = text.decode()
    assert proc.returncode == 0, out[-3000:]
    assert "200 connections" in out, out
    assert float(re.search(r"server cores busy\s+([0-9.]+)", out)[1]) > 0, out  # type: ignore[index]
    assert float(re.search(r"client processes' cores\s+([0-9.]+)", out)[1]) > 0, out  # type: ignore[index]
