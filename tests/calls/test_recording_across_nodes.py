"""A call recorded on node A is played back from node B (issue 30): two nodes on PostgreSQL
+ Redis with their own DATA_DIRs, the recording in SeaweedFS's S3 as segment objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.calls.support import (
    accept_call,
    analyse_ogg,
    call_nodes,
    calls_of,
    close_all,
    endpoint,
    parties,
    start_call,
)
from tests.support.procs import REDIS_URL
from tests.support.seaweed import S3Server
from tests.support.server import RunningGateway
from tests.support.waits import until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3]


@pytest.fixture
async def two_nodes(tmp_path: Path, loopback_ice: None, monkeypatch: pytest.MonkeyPatch, seaweed: S3Server
                    ) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    async with call_nodes(tmp_path, monkeypatch, redis_url=REDIS_URL, blobs=seaweed.blob_config()) as nodes:
        yield nodes


async def test_a_call_recorded_on_node_a_plays_back_from_node_b(
        two_nodes: tuple[RunningGateway, RunningGateway], tmp_path: Path) -> None:
    a, b = two_nodes
    p = await parties(a)
    nt, token, ag, v = p.tenant, p.token, p.agent, p.visitor
    caller, callee = endpoint(440), endpoint(660)
    try:
        call_id = await start_call(v, caller)
        await accept_call(ag, call_id, callee, ring_timeout=20)
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
        await close_all((caller, callee), (ag, v))
