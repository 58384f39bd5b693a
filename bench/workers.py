"""Load-generator processes (bench/load/worker.mjs), each driven by JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from bench.procs import BENCH, cpu_seconds, ensure_npm, node_bin


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._early: list[dict[str, Any]] = []  # events read while waiting for another one

    @classmethod
    async def start(cls, url: str, local_address: str | None = None, agent_url: str | None = None) -> Worker:
        ensure_npm("load")
        opts = json.dumps({"url": url, "localAddress": local_address, "agentUrl": agent_url})
        cmd = f'ulimit -n $(ulimit -Hn); exec "{node_bin()}" --max-old-space-size=4096 worker.mjs \'{opts}\''
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", cmd, cwd=BENCH / "load", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024)
        w = cls(proc)
        await w.expect("started")
        return w

    def cpu(self) -> float:
        """utime + stime of the worker's Node process (bash `exec`s it: same pid); 0 once it
        has exited."""
        try:
            return cpu_seconds(self.proc.pid)
        except OSError:
            return 0.0

    async def send(self, cmd: str, **kw: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **kw}) + "\n").encode())
        await self.proc.stdin.drain()

    async def expect(self, event: str, timeout: float = 120.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for i, early in enumerate(self._early):
            if early.get("event") == event:
                return self._early.pop(i)
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(f"load worker exited while waiting for {event!r}")
            msg: dict[str, Any] = json.loads(line)
            if msg.get("event") == "error":
                raise RuntimeError(f"load worker: {msg['error']}")
            if msg.get("event") == event:
                return msg
            self._early.append(msg)

    async def request(self, cmd: str, event: str, timeout: float = 120.0, **kw: Any) -> dict[str, Any]:
        await self.send(cmd, **kw)
        return await self.expect(event, timeout)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.request("close", "closed", timeout=10)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_workers(url: str, n: int, agent_url: str | None = None) -> list[Worker]:
    return list(await asyncio.gather(*(Worker.start(url, f"127.0.0.{2 + i}", agent_url) for i in range(n))))


async def close_all(workers: list[Worker]) -> None:
    await asyncio.gather(*(w.close() for w in workers))


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
