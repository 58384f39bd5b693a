"""`python -m bench.recplay [--minutes 60] [--ranges 200] [--before REV]`: playback of a long
call recording through `GET /api/v1/recordings/{id}`, full and by random ranges.

The recording is made through the real path (`Recordings.start` → `OggOpusMuxer` →
`AgeStreamWriter` → `LocalBlobStore`): two legs of 20 ms Opus packets at 32 kb/s (a browser's
default for a voice call), `--minutes` long, in a temp DATA_DIR with SQLite. The gateway runs
in its own process (`python -m gateway serve`); this process is the HTTP client.

Measured per scenario: time to first byte (response headers and the first body bytes),
throughput, and the server's peak RSS above its RSS before the scenario (the kernel's
high-water mark, VmHWM, reset with `/proc/<pid>/clear_refs` before each scenario; one 1-byte
range is played first so that one-time costs are not counted). Scenarios:
one full playback; four full playbacks at once (peak per playback = growth / 4); `--ranges`
random 128 KiB ranges one after another (a listener seeking).

`--before REV` runs the same scenarios against the server of git revision REV (exported with
`git archive` into the temp dir and run from there with this venv), on the same data: the
figures before and after a change to the playback path.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import io
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
RANGE_BYTES = 128 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def opus_packets(n: int, bitrate: int) -> list[bytes]:
    """`n` 20 ms Opus packets of a tone with noise, mono 48 kHz, at `bitrate` b/s."""
    import av
    import numpy as np

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.time_base = fractions.Fraction(1, 48000)
    enc.bit_rate = bitrate
    rng = np.random.default_rng(7)
    out: list[bytes] = []
    for i in range(n):
        t = (np.arange(960) + i * 960) / 48000
        x = (np.sin(2 * np.pi * 440 * t) * 6000 + rng.standard_normal(960) * 1500).astype(np.int16)
        fr = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
        fr.sample_rate, fr.pts, fr.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        out += [bytes(p) for p in enc.encode(fr)]
    return out


async def make_recording(data_dir: str, tenant_id: str, minutes: float) -> dict[str, Any]:
    """One `minutes`-long two-leg recording through the real encrypt path; its catalogue row."""
    from gateway.calls.feature import build_recordings
    from gateway.store.factory import open_store

    store = await open_store(None, sqlite_path=str(Path(data_dir) / "gateway.sqlite3"))
    try:
        recs = build_recordings(data_dir, None, store, embedded=True)
        pool = opus_packets(500, 32000)
        t0 = time.perf_counter()
        rec = await recs.start(tenant_id, "c" * 32, ("caller", "agent"))
        frames = int(minutes * 60 * 50)
        for i in range(frames):
            p = pool[i % len(pool)]
            rec.add(0, p, i * 960)
            rec.add(1, pool[(i + 250) % len(pool)], i * 960)
            if i % 5000 == 0:
                await asyncio.sleep(0)
        row = await rec.finish()
        return {"id": row.id, "state": row.state, "ciphertext_bytes": row.size, "duration_s": row.duration,
                "write_s": round(time.perf_counter() - t0, 1)}
    finally:
        await store.close()


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class Server:
    def __init__(self, src: Path, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], cwd=src,
                                     env={**env, "PYTHONPATH": str(src)}, stdout=self._log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")

    def reset_peak(self) -> int:
        """Reset the peak RSS; returns the RSS now (KiB)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        return status_kb(self.proc.pid, "VmRSS")

    def peak(self) -> int:
        return status_kb(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


async def fetch(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, float, int]:
    """(seconds to the first body bytes, seconds in all, bytes)."""
    t0 = time.perf_counter()
    async with http.get(url, headers=headers) as r:
        if r.status not in (200, 206):
            raise RuntimeError(f"{r.status}: {await r.text()}")
        first = None
        n = 0
        async for piece in r.content.iter_any():
            if first is None:
                first = time.perf_counter() - t0
            n += len(piece)
    return first or 0.0, time.perf_counter() - t0, n


async def scenarios(server: Server, rec_id: str, token: str, size: int, ranges: int) -> dict[str, Any]:
    url = f"{server.url}/api/v1/recordings/{rec_id}"
    auth = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
        async with http.get(url, headers={**auth, "Range": "bytes=0-0"}) as r:  # warm up: auth, worker thread
            await r.read()
        base = server.reset_peak()
        ttfb, total, n = await fetch(http, url, auth)
        assert n == size, (n, size)
        out["full"] = {"ttfb_ms": round(ttfb * 1000, 1), "seconds": round(total, 2),
                       "mb_per_s": round(n / total / 1e6, 1), "peak_rss_growth_kib": server.peak() - base}
        base = server.reset_peak()
        t0 = time.perf_counter()
        res = await asyncio.gather(*(fetch(http, url, auth) for _ in range(4)))
        total = time.perf_counter() - t0
        out["full_x4"] = {"ttfb_ms_max": round(max(r[0] for r in res) * 1000, 1), "seconds": round(total, 2),
                          "mb_per_s": round(sum(r[2] for r in res) / total / 1e6, 1),
                          "peak_rss_growth_kib": server.peak() - base,
                          "per_playback_kib": (server.peak() - base) // 4}
        rnd = random.Random(1)
        base = server.reset_peak()
        ttfbs, t0, got = [], time.perf_counter(), 0
        for _ in range(ranges):
            a = rnd.randrange(0, size - RANGE_BYTES)
            ttfb, _, n = await fetch(http, url, {**auth, "Range": f"bytes={a}-{a + RANGE_BYTES - 1}"})
            assert n == RANGE_BYTES
            ttfbs.append(ttfb)
            got += n
        total = time.perf_counter() - t0
        ttfbs.sort()
        out["ranges"] = {"n": ranges, "bytes_each": RANGE_BYTES,
                         "ttfb_ms_median": round(statistics.median(ttfbs) * 1000, 1),
                         "ttfb_ms_p95": round(ttfbs[int(len(ttfbs) * 0.95) - 1] * 1000, 1),
                         "requests_per_s": round(ranges / total, 1), "peak_rss_growth_kib": server.peak() - base}
    return out


def export_rev(rev: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    blob = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--ranges", type=int, default=200)
    ap.add_argument("--before", metavar="REV", help="also measure the server of this git revision")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-recplay-") as tmp:
        env = {**os.environ, "DATA_DIR": tmp, "PORT": str(free_port()), "HOST": "127.0.0.1"}
        for k in ("DATABASE_URL", "REDIS_URL", "MASTER_KEY", "WORKERS"):
            env.pop(k, None)
        created = subprocess.run([sys.executable, "-m", "gateway", "tenant", "create", "--name", "Bench"],
                                 cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        tenant = json.loads(created.stdout)
        rec = asyncio.run(make_recording(tmp, tenant["tenant_id"], args.minutes))
        rec_id = rec.pop("id")
        size = _plain_size(tmp, tenant["tenant_id"], rec_id)
        report: dict[str, Any] = {"recording": {**rec, "ogg_bytes": size}}
        runs = [("after", ROOT)]
        if args.before:
            src = Path(tmp) / "before-src"
            export_rev(args.before, src)
            runs.insert(0, (f"before ({args.before})", src))
        for name, src in runs:
            server = Server(src, env, Path(tmp) / f"gateway-{len(report)}.log")
            try:
                report[name] = asyncio.run(scenarios(server, rec_id, tenant["admin_token"], size, args.ranges))
            finally:
                server.stop()
        print(json.dumps(report, indent=2))
    return 0


def _plain_size(data_dir: str, tenant_id: str, rec_id: str) -> int:
    """The Ogg size, read with the seekable reader (header and last chunk only)."""
    from gateway.calls.feature import build_recordings
    from gateway.store.factory import open_store

    async def run() -> int:
        store = await open_store(None, sqlite_path=str(Path(data_dir) / "gateway.sqlite3"))
        try:
            recs = build_recordings(data_dir, None, store, embedded=True)
            return (await recs.open(await recs.row(tenant_id, rec_id))).size
        finally:
            await store.close()

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
