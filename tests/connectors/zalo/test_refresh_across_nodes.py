"""Item 8 of issue 33: two gateways on one PostgreSQL database refresh a Zalo inbox's tokens
one at a time. Node A's refresh is on its way (Zalo spent the refresh token, its answer is
still coming) when node B needs a new token too: B must not spend the same refresh token
(Zalo would refuse it and B would fail); it waits for A's pair and uses it."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import uuid

import pytest

from connectors.feature import CONNECTORS_KEY
from connectors.zalo.gateway import ZaloGatewayConnector
from gateway.broker.memory import MemoryHub
from gateway.core.domain import Channel
from tests.connectors.conftest import PG_DSN
from tests.connectors.zalo import fake_zalo as fz
from tests.support.procs import drop_schema
from tests.support.server import RunningGateway, node_config, run_gateway
from tests.support.waits import until


def zalo_of(rg: RunningGateway) -> ZaloGatewayConnector:
    c = rg.gw.app[CONNECTORS_KEY].connectors[Channel.ZALO]
    assert isinstance(c, ZaloGatewayConnector)
    return c


@pytest.mark.postgres
async def test_two_nodes_refresh_one_at_a_time(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connectors.zalo.tokens")
    monkeypatch.setenv("MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    hub = MemoryHub()
    try:
        async with (fz.run_fake_zalo() as fake,
                    run_gateway(node_config(tmp_path, "node-a", PG_DSN, schema), hub=hub) as a,
                    run_gateway(node_config(tmp_path, "node-b", PG_DSN, schema), hub=hub) as b):
            nt = await a.tenant()
            at, rt, exp = fake.issue()
            channels = a.gw.app[CONNECTORS_KEY].ctx.channels
            inbox = await channels.add(
                tenant_id=nt.tenant.id, kind=Channel.ZALO, name="OA",
                credentials={"oa_secret_key": fz.OA_SECRET, "app_secret_key": fz.APP_SECRET, "access_token": at,
                             "refresh_token": rt, "expires_at": exp},
                settings={"address": fz.OA_ID, "app_id": fz.APP_ID, "api_base": fake.url, "oauth_base": fake.url})
            for node in (a, b):
                await zalo_of(node).reload_accounts(force=True)
            ma, mb = zalo_of(a).token_manager(fz.OA_ID), zalo_of(b).token_manager(fz.OA_ID)
            fake.access_tokens.pop(at)  # both nodes see their token refused (-216) and refresh
            fake.refresh_gate = asyncio.Event()

            def b_waits() -> bool:
                return any("another node is refreshing" in r.getMessage() for r in caplog.records)

            on_a = asyncio.create_task(ma.refresh(stale=at))
            await until(lambda: fake.refresh_calls == 1, timeout=30)  # A's refresh is at Zalo
            on_b = asyncio.create_task(mb.refresh(stale=at))
            await until(lambda: fake.refresh_calls == 2 or b_waits() or on_b.done(), timeout=30)
            fake.refresh_gate.set()
            got_a, got_b = await asyncio.gather(on_a, on_b, return_exceptions=True)

            assert fake.refresh_errors == [] and fake.refresh_calls == 1, fake.refresh_errors
            assert got_a == got_b and got_a in fake.access_tokens
            stored = await channels.credentials(inbox)
            assert stored["refresh_token"] in fake.refresh_tokens  # the rotated token was kept
            assert stored["access_token"] == got_a
    finally:
        await drop_schema(schema, PG_DSN)
