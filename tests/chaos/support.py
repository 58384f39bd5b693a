"""Processes for chaos tests: a private Redis (never the shared one) and cluster helpers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.procs import Cluster, free_port

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
RELAXED_LIMITS = {
    "RATE_VISITOR_MESSAGES_PER_SEC": "1000", "RATE_VISITOR_MESSAGES_BURST": "1000",
    "RATE_IP_MESSAGES_PER_SEC": "10000", "RATE_IP_MESSAGES_BURST": "10000",
    "RATE_IP_CONVERSATIONS_PER_MIN": "100000", "RATE_IP_CONVERSATIONS_BURST": "10000",
    "MAX_CONNECTIONS_PER_IP": "100000",
}


class PrivateRedis:
    """`redis-server` on a free loopback port, no persistence; restartable on the same port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self._spawn()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    async def restart(self, down_for: float = 0.5) -> None:
        self.stop()
        await asyncio.sleep(down_for)
        await self.start()


@contextlib.asynccontextmanager
async def private_redis(tmp: Path) -> AsyncIterator[PrivateRedis]:
    r = PrivateRedis(tmp / "redis.log")
    await r.start()
    try:
        yield r
    finally:
        r.stop()


async def create_agents(url: str, admin_token: str, n: int) -> list[str]:
    tokens = []
    async with aiohttp.ClientSession() as http:
        for i in range(n):
            async with http.post(f"{url}/api/v1/agents", json={"name": f"Agent {i}", "capacity": 100},
                                 headers={"Authorization": f"Bearer {admin_token}"}) as resp:
                assert resp.status == 201, await resp.text()
                tokens.append((await resp.json())["token"])
    return tokens


async def stored_messages(url: str, admin_token: str, convs: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    async with aiohttp.ClientSession() as http:
        for conv in convs:
            async with http.get(f"{url}/api/v1/conversations/{conv}/messages?limit=200",
                                headers={"Authorization": f"Bearer {admin_token}"}) as resp:
                assert resp.status == 200, await resp.text()
                out[conv] = (await resp.json())["messages"]
    return out


def configure(cluster: Cluster, redis_url: str, **extra: str) -> None:
    cluster.env.update({"REDIS_URL": redis_url, "MASTER_KEY": MASTER_KEY, **RELAXED_LIMITS, **extra})
