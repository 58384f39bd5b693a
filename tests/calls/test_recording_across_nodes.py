"""A call recorded on node A is played back from node B (issue 30): two nodes on PostgreSQL
+ Redis with their own DATA_DIRs, the recording in SeaweedFS's S3 as segment objects."""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Config
from tests.calls.support import analyse_ogg, calls_of, endpoint
from tests.support.procs import PG_DSN, REDIS_URL, drop_schema
from tests.support.seaweed import S3Server
from tests.support.server import RunningGateway, agent, node_config, run_gateway, visitor
from tests.support.waits import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3]


@pytest.fixture
async def two_nodes(tmp_path: Path, loopback_ice: None, monkeypatch: pytest.MonkeyPatch, seaweed: S3Server
                    ) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    monkeypatch.setenv("MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("CALL_RING_TIMEOUT", "10")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    blobs = seaweed.blob_config()

    def config(name: str) -> Config:
        return node_config(tmp_path, name, PG_DSN, schema, redis_url=REDIS_URL, blobs=blobs)

    try:
        async with run_gateway(config("node-a")) as a, run_gateway(config("node-b")) as b:
            yield a, b
    finally:
        await drop_schema(schema)


async def test_a_call_recorded_on_node_a_plays_back_from_node_b(
        two_nodes: tuple[RunningGateway, RunningGateway], tmp_path: Path) -> None:
    a, b = two_nodes
    nt = await a.tenant()
    _, token = await a.agent_token(nt.tenant.id)
    ag = await agent(a.url, token)
    await ag.call("presence:set", {"status": "online"})
    v = await visitor(a.url, nt.tenant.widget_key)
    caller, callee = endpoint(440), endpoint(660)
    cl: Any
    try:
        conv = (await v.call("conversation:start"))["conversation"]
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        assert ack["ok"], ack
        call_id = ack["call"]["id"]
        await caller.answer(ack["sdp"])
        await ag.wait_for(lambda: ag.of("call:ringing"), timeout=20)
        acc = await ag.call("call:accept", {"call_id": call_id, "sdp": await callee.offer()}, timeout=10)
        assert acc["ok"], acc
        await callee.answer(acc["sdp"])
        await until(lambda: caller.frames > 100 and callee.frames > 100, timeout=60)  # 2 s of audio both ways
        assert (await v.call("call:hangup", {"call_id": call_id}))["ok"]
        row = await calls_of(a).store.get(nt.tenant.id, call_id)
        assert row is not None and row.recording_id
        rec = await calls_of(a).recordings.row(nt.tenant.id, row.recording_id)
        assert rec.state == "complete" and rec.size > 1000
        assert not (tmp_path / "node-a" / "recordings").exists()  # in the bucket, not on A's disk

        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{b.url}/api/v1/recordings/{rec.id}", headers=auth) as r:
                assert r.status == 200 and r.headers["Content-Type"] == "audio/ogg"
                ogg = await r.read()
            async with http.get(f"{b.url}/api/v1/recordings/{rec.id}", headers={**auth, "Range": "bytes=0-99"}) as r:
                assert r.status == 206 and await r.read() == ogg[:100]
        rep = analyse_ogg(ogg)
        assert rep.streams == ["caller", "agent"]
        assert abs(rep.peak_freqs[0] - 440) < 15 and abs(rep.peak_freqs[1] - 660) < 15, rep
    finally:
        for c in (caller, callee):
            await c.close()
        for cl in (ag, v):
            with contextlib.suppress(Exception):
                await cl.close()
