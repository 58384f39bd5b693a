"""aiortc endpoints for call tests: a tone source, an offer with ICE gathered, a frame counter;
two call nodes on one PostgreSQL schema, and the steps of a call every such test takes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fractions
import io
import math
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gateway.admin.tenants import NewTenant
from gateway.broker.memory import MemoryHub
from gateway.calls.feature import CALLS_KEY
from gateway.calls.service import CallService
from gateway.config import BlobConfig, Config
from tests.support.procs import PG_DSN, drop_schema
from tests.support.server import Client, RunningGateway, agent, node_config, run_gateway, visitor

TB = fractions.Fraction(1, 48000)


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.pts = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.pts / 48000 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(960) + self.pts) / 48000
        samples = (np.sin(2 * math.pi * self.freq * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.pts
        frame.time_base = TB
        self.pts += 960
        return frame


@dataclass
class Endpoint:
    pc: RTCPeerConnection
    frames: int = 0
    loud_frames: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def start_counting(self) -> None:
        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self._task = asyncio.create_task(self._count(track))

    async def _count(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames += 1
                arr = frame.to_ndarray()
                if np.abs(arr.astype(np.int32)).max() > 500:
                    self.loud_frames += 1

    async def close(self) -> None:
        await self.pc.close()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def endpoint(freq: float) -> Endpoint:
    ep = Endpoint(RTCPeerConnection())
    ep.pc.addTrack(Tone(freq))
    ep.start_counting()
    return ep


def calls_of(rg: RunningGateway) -> CallService:
    return rg.gw.app[CALLS_KEY]


@contextlib.asynccontextmanager
async def call_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, hub: MemoryHub | None = None,
                     redis_url: str | None = None, blobs: BlobConfig | None = None,
                     ) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Nodes A and B on one new PostgreSQL schema (dropped after), each with its own data
    directory, a master key set and calls ringing for 10 s; they share `hub` (an in-process
    broker) or `redis_url`, and `blobs` (default: files on each node's own disk)."""
    monkeypatch.setenv("MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CALL_RING_TIMEOUT", "10")
    schema = f"t_{uuid.uuid4().hex[:12]}"

    def config(name: str) -> Config:
        return node_config(tmp_path, name, PG_DSN, schema, redis_url=redis_url, blobs=blobs)

    try:
        async with run_gateway(config("node-a"), hub=hub) as a, run_gateway(config("node-b"), hub=hub) as b:
            yield a, b
    finally:
        await drop_schema(schema)


@dataclass
class Parties:
    tenant: NewTenant
    agent_id: str
    token: str
    agent: Client  # online
    visitor: Client


async def parties(rg: RunningGateway, *, agent_url: str | None = None, visitor_url: str | None = None) -> Parties:
    """A new tenant on `rg` with one agent, connected (to `agent_url`, default `rg`'s) and
    online, and a visitor connected to `visitor_url` (default `rg`'s)."""
    nt = await rg.tenant()
    agent_id, token = await rg.agent_token(nt.tenant.id)
    ag = await agent(agent_url or rg.url, token)
    await ag.call("presence:set", {"status": "online"})
    v = await visitor(visitor_url or rg.url, nt.tenant.widget_key)
    return Parties(nt, agent_id, token, ag, v)


async def start_call(visitor: Client, caller: Endpoint) -> str:
    """The visitor starts a conversation and calls from `caller`; the gateway's answer is
    set on `caller`. Returns the call's id."""
    conv = (await visitor.call("conversation:start"))["conversation"]
    ack = await visitor.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
    assert ack["ok"], ack
    await caller.answer(ack["sdp"])
    return str(ack["call"]["id"])


async def accept_call(agent: Client, call_id: str, callee: Endpoint, *, ring_timeout: float = 5.0) -> dict[str, Any]:
    """Once the agent has been rung (within `ring_timeout`), they accept `call_id` from
    `callee`, whose answer is set. Returns the accept's ack."""
    await agent.wait_for(lambda: agent.of("call:ringing"), timeout=ring_timeout)
    acc: dict[str, Any] = await agent.call("call:accept", {"call_id": call_id, "sdp": await callee.offer()},
                                           timeout=10)
    assert acc["ok"], acc
    await callee.answer(acc["sdp"])
    return acc


async def close_all(endpoints: Iterable[Endpoint], clients: Iterable[Client]) -> None:
    """A test's teardown: the endpoints, then the clients (whichever are still open)."""
    for ep in endpoints:
        await ep.close()
    for cl in clients:
        with contextlib.suppress(Exception):
            await cl.close()


@dataclass
class OggReport:
    streams: list[str]
    durations: list[float]
    peak_freqs: list[float]
    loud_fraction: list[float]


def analyse_ogg(data: bytes) -> OggReport:
    """Decode every Opus stream of an Ogg file; duration, dominant frequency, share of loud frames."""
    container = av.open(io.BytesIO(data), mode="r", format="ogg")
    names = [s.metadata.get("title", "") for s in container.streams.audio]
    pcm: dict[int, list[np.ndarray]] = {s.index: [] for s in container.streams.audio}
    for packet in container.demux():
        if packet.size == 0:
            continue
        for frame in packet.decode():
            pcm[packet.stream.index].append(frame.to_ndarray().reshape(-1))  # type: ignore[union-attr]
    durations, peaks, loud = [], [], []
    for idx in sorted(pcm):
        chunks = pcm[idx]
        x = np.concatenate(chunks) if chunks else np.zeros(1)
        durations.append(len(x) / 48000)
        spec = np.abs(np.fft.rfft(x.astype(np.float64)))
        peaks.append(float(np.argmax(spec[1:]) + 1) * 48000 / len(x))
        blocks = [np.abs(c).max() for c in chunks] if chunks else [0.0]
        loud.append(sum(1 for b in blocks if b > 0.02) / len(blocks))
    container.close()
    return OggReport(names, durations, peaks, loud)
