"""Files every node can reach (issue 30): two nodes on PostgreSQL + Redis + SeaweedFS's S3,
each with its own DATA_DIR and no shared disk. A visitor uploads on node A, the agent on
node B gets the message and downloads the file from B; the signed link works on either."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.blobs.s3 import S3Blobs
from gateway.config import Config
from tests.support.procs import PG_DSN, REDIS_URL, drop_schema
from tests.support.seaweed import S3Server
from tests.support.server import RunningGateway, agent, new_client_id, node_config, run_gateway, visitor

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.s3]

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.fixture
async def two_nodes(tmp_path: Path, seaweed: S3Server
                    ) -> AsyncIterator[tuple[RunningGateway, RunningGateway, S3Blobs]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    prefix = f"nodes-{uuid.uuid4().hex[:8]}"
    blobs = seaweed.blob_config(prefix)

    def config(name: str) -> Config:
        return node_config(tmp_path, name, PG_DSN, schema, redis_url=REDIS_URL, blobs=blobs)

    bucket = S3Blobs(seaweed.settings(prefix + "/"))
    try:
        async with run_gateway(config("node-a")) as a, run_gateway(config("node-b")) as b:
            yield a, b, bucket
    finally:
        await bucket.close()
        await drop_schema(schema)


async def test_a_visitor_uploads_on_node_a_and_the_agent_downloads_on_node_b(
        two_nodes: tuple[RunningGateway, RunningGateway, S3Blobs], tmp_path: Path) -> None:
    a, b, bucket = two_nodes
    nt = await a.tenant()
    wk = nt.tenant.widget_key
    ag = await agent(b.url, nt.admin_token)
    v = await visitor(a.url, wk)
    try:
        await ag.call("presence:set", {"status": "online"})
        conv = (await v.call("conversation:start"))["conversation"]
        vh = {"X-Widget-Key": wk, "X-Visitor-Token": v.session["visitor_token"]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{a.url}/api/v1/uploads", params={"name": "ảnh.png"}, data=PNG,
                                 headers={**vh, "Content-Type": "image/png"}) as r:
                assert r.status == 201, await r.text()
                up = (await r.json())["upload"]
            res = await v.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                "text": "xem ảnh", "attachments": [up["id"]]})
            assert res["ok"], res
            assert (await ag.call("conversation:watch", {"conversation_id": conv["id"]}))["ok"]
            await ag.wait_for(lambda: any(m["attachments"] for m in ag.messages(conv["id"])), timeout=20)
            att: dict[str, Any] = next(m for m in ag.messages(conv["id"]) if m["attachments"])["attachments"][0]
            assert att["id"] == up["id"]

            auth = {"Authorization": f"Bearer {nt.admin_token}"}
            async with http.get(f"{b.url}/api/v1/uploads/{att['id']}", headers=auth) as r:
                assert r.status == 200 and await r.read() == PNG
                assert r.headers["Content-Type"] == "image/png"
            async with http.get(f"{b.url}/api/v1/uploads/{att['id']}/link", headers=auth) as r:
                link = (await r.json())["url"]
            for node in (a, b):  # the signed link works on any node
                async with http.get(f"{node.url}{link}") as r:
                    assert r.status == 200 and await r.read() == PNG
            # the visitor reads it back from node B too
            async with http.get(f"{b.url}/api/v1/uploads/{att['id']}", headers=vh) as r:
                assert r.status == 200 and await r.read() == PNG

        # the bytes are in the bucket, on neither node's disk
        keys = [i.key async for i in bucket.list("uploads/")]
        assert keys == [f"uploads/{nt.tenant.id}/{up['id']}"]
        assert not (tmp_path / "node-a" / "uploads").exists() and not (tmp_path / "node-b" / "uploads").exists()
        async with aiohttp.ClientSession() as http, http.get(f"{b.url}/readyz") as r:
            assert (await r.json())["checks"]["blobs"] == "ok"
    finally:
        await v.close()
        await ag.close()
