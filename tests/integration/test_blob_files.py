"""The blob store under a real gateway (issue 30): uploads never attached are deleted after
UPLOAD_ORPHAN_TTL on the gateway's (injected) clock; an unreachable object store makes an
upload a typed `unavailable` with `retry_after` (never a 500), `/readyz` says so and the
blob metrics count it; a data-subject erasure and a tenant's deletion remove its objects
from the bucket."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.blobs.s3 import S3Blobs
from gateway.config import BlobConfig, Config
from gateway.privacy.feature import RETENTION_KEY
from gateway.privacy.retention import YEAR
from gateway.privacy.store import privacy_store
from gateway.widget.feature import UPLOADS_KEY
from tests.support.procs import free_port
from tests.support.seaweed import S3Server
from tests.support.server import RunningGateway, make_config, new_client_id, run_gateway, visitor

PNG = b"\x89PNG\r\n\x1a\n-blob-test"


def with_blobs(cfg: Config, blobs: BlobConfig) -> Config:
    return replace(cfg, storage=replace(cfg.storage, blobs=blobs))


async def upload(url: str, headers: dict[str, str], data: bytes = PNG) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{url}/api/v1/uploads", params={"name": "a.png"}, data=data,
            headers={**headers, "Content-Type": "image/png"}) as r:
        return r.status, await r.json(), r.headers


class Clock:
    """The gateway's clock: the wall clock plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def s3_node(tmp_path: Path, seaweed: S3Server) -> AsyncIterator[tuple[RunningGateway, S3Blobs, Clock]]:
    prefix = f"single-{time.time_ns()}"
    clock = Clock()
    bucket = S3Blobs(seaweed.settings(prefix + "/"))
    try:
        async with run_gateway(with_blobs(make_config(tmp_path), seaweed.blob_config(prefix)), clock=clock) as rg:
            yield rg, bucket, clock
    finally:
        await bucket.close()


async def keys(bucket: S3Blobs, prefix: str) -> list[str]:
    return sorted([i.key async for i in bucket.list(prefix)])


@pytest.mark.s3
async def test_uploads_never_attached_are_deleted_after_the_orphan_ttl(
        s3_node: tuple[RunningGateway, S3Blobs, Clock]) -> None:
    rg, bucket, clock = s3_node
    t = await rg.tenant()
    v = await visitor(rg.url, t.tenant.widget_key)
    try:
        h = {"X-Widget-Key": t.tenant.widget_key, "X-Visitor-Token": v.session["visitor_token"]}
        conv = (await v.call("conversation:start"))["conversation"]["id"]
        _, kept, _ = await upload(rg.url, h)
        _, orphan, _ = await upload(rg.url, h)
        assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(), "text": "",
                                              "attachments": [kept["upload"]["id"]]}))["ok"]
        uploads = rg.gw.app[UPLOADS_KEY]
        ttl = rg.gw.config.storage.blobs.orphan_ttl
        assert ttl == 24 * 3600.0
        assert await uploads.sweep_orphans(ttl) == 0  # young: kept
        clock.offset = ttl + 1
        assert await uploads.sweep_orphans(ttl) == 1
        assert await keys(bucket, "uploads/") == [f"uploads/{t.tenant.id}/{kept['upload']['id']}"]
        auth = {"Authorization": f"Bearer {t.admin_token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{rg.url}/api/v1/uploads/{orphan['upload']['id']}", headers=auth) as r:
                assert r.status == 404
            async with http.get(f"{rg.url}/api/v1/uploads/{kept['upload']['id']}", headers=auth) as r:
                assert r.status == 200 and await r.read() == PNG
    finally:
        await v.close()


async def test_an_unreachable_object_store_makes_uploads_unavailable_with_retry_after(tmp_path: Path) -> None:
    dead = BlobConfig(url="s3://izh-test/x", endpoint=f"http://127.0.0.1:{free_port()}", region="us-east-1",
                      access_key_id="k", secret_access_key="s", path_style=True, timeout=0.5, attempts=1)
    async with run_gateway(with_blobs(make_config(tmp_path), dead)) as rg:
        t = await rg.tenant()
        v = await visitor(rg.url, t.tenant.widget_key)
        try:
            h = {"X-Widget-Key": t.tenant.widget_key, "X-Visitor-Token": v.session["visitor_token"]}
            status, body, headers = await upload(rg.url, h)
            assert status == 503, body
            assert body["error"]["code"] == "unavailable" and body["error"]["details"]["retry_after"] > 0
            assert int(headers["Retry-After"]) >= 1
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{rg.url}/readyz") as r:
                    ready = await r.json()
                    assert r.status == 503 and ready["checks"]["blobs"].startswith("error: unavailable")
                async with http.get(f"{rg.url}/metrics") as r:
                    text = await r.text()
            assert 'izh_blob_operations_total{backend="s3",op="put",outcome="unavailable"} 1.0' in text
        finally:
            await v.close()


@pytest.mark.s3
async def test_erasure_and_tenant_deletion_remove_the_objects(s3_node: tuple[RunningGateway, S3Blobs, Clock]) -> None:
    rg, bucket, _ = s3_node
    t, other = await rg.tenant(), await rg.tenant("Other")
    contacts = []
    for tenant in (t, other):
        v = await visitor(rg.url, tenant.tenant.widget_key, name="Khách")
        try:
            h = {"X-Widget-Key": tenant.tenant.widget_key, "X-Visitor-Token": v.session["visitor_token"]}
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            _, up, _ = await upload(rg.url, h)
            assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(), "text": "x",
                                                  "attachments": [up["upload"]["id"]]}))["ok"]
            contacts.append(v.session["contact_id"])
        finally:
            await v.close()
    assert len(await keys(bucket, "uploads/")) == 2

    auth = {"Authorization": f"Bearer {t.admin_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{rg.url}/api/v1/contacts/{contacts[0]}/export", params={"format": "zip"},
                            headers=auth) as r:
            assert r.status == 200
            with zipfile.ZipFile(io.BytesIO(await r.read())) as z:  # the file, read back from the bucket
                assert [z.read(n) for n in z.namelist() if n.startswith("attachments/")] == [PNG]
        async with http.post(f"{rg.url}/api/v1/contacts/{contacts[0]}/erase", headers=auth) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["erased"]["files"] == 1
    assert await keys(bucket, f"uploads/{t.tenant.id}/") == []
    assert len(await keys(bucket, f"uploads/{other.tenant.id}/")) == 1

    ps = privacy_store(rg.gw.db, sqlite=rg.gw.config.embedded)
    assert await ps.end_tenant(other.tenant.id, time.time() - 4 * YEAR)
    report = await rg.gw.app[RETENTION_KEY].retention.run()
    assert [(d.tenant_id, d.files) for d in report.tenants] == [(other.tenant.id, 1)]
    assert await keys(bucket, "uploads/") == []
