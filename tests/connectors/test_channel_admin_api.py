"""The admin REST API for channel inboxes against a real gateway: add with a wrong secret and
see the webhook refused, rotate and see it accepted (no restart), disable / enable / update /
remove take effect on the next webhook; schema refusals are 400 naming the field; only the
tenant's admins may call it; every change is audited."""

from __future__ import annotations

import base64
import logging
import os
import uuid
from typing import Any

import aiohttp
import pytest

from gateway.broker.memory import MemoryHub
from gateway.config import Config
from tests.connectors.conftest import PG_DSN
from tests.connectors.facebook.fake_graph import FakeGraph, encode_payload, signed_headers
from tests.connectors.facebook.payloads import PAGE_ID, delivery, messaging_entry, text_event
from tests.support.procs import drop_schema
from tests.support.server import make_config, node_config, run_gateway

SECRET = "right-app-secret"


async def call(http: aiohttp.ClientSession, url: str, method: str, path: str, token: str,
               body: object = None) -> tuple[int, Any]:
    async with http.request(method, f"{url}/api/v1{path}", json=body,
                            headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def webhook(http: aiohttp.ClientSession, url: str, mid: str) -> int:
    body = encode_payload(delivery(messaging_entry(text_event(mid, "xin chào"))))
    async with http.post(f"{url}/webhooks/facebook", data=body, headers=signed_headers(SECRET, body)) as r:
        await r.read()
        return r.status


async def test_channel_lifecycle_over_rest(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connectors.audit")
    async with run_gateway(make_config(tmp_path)) as rg, aiohttp.ClientSession() as http:
        nt, other = await rg.tenant(), await rg.tenant("Other")
        admin, url = nt.admin_token, rg.url
        creds = {"page_access_token": "EAAG-tok", "app_secret": "wrong-secret", "verify_token": "v"}

        # schema refusals name the field; nothing is stored
        st, body = await call(http, url, "POST", "/channels", admin, {
            "kind": "facebook", "name": "Page", "settings": {"adress": PAGE_ID}, "credentials": creds})
        assert st == 400 and body["error"]["details"]["field"] == "settings.adress", body
        st, body = await call(http, url, "POST", "/channels", admin, {
            "kind": "email", "name": "Mail", "settings": {"address": "not-an-address"}})
        assert st == 400 and body["error"]["details"]["field"] == "settings.address", body

        st, body = await call(http, url, "POST", "/channels", admin, {
            "kind": "facebook", "name": "Page", "settings": {"address": PAGE_ID, "api_base": "http://127.0.0.1:9"},
            "credentials": creds})
        assert st == 201, body
        cid = body["channel"]["channel_id"]
        assert "wrong-secret" not in str(body) and body["channel"]["enabled"] is True
        assert await webhook(http, url, "m1") == 401  # signed with the right secret; the inbox has the wrong one

        # a non-admin agent and another tenant's admin cannot touch it
        _, agent_token = await rg.agent_token(nt.tenant.id)
        assert (await call(http, url, "GET", "/channels", agent_token))[0] == 403
        assert (await call(http, url, "POST", f"/channels/{cid}/rotate", other.admin_token,
                           {"credentials": {"app_secret": SECRET}}))[0] == 404

        st, body = await call(http, url, "POST", f"/channels/{cid}/rotate", admin,
                              {"credentials": {"app_scret": "x"}})
        assert st == 400 and body["error"]["details"]["field"] == "credentials.app_scret"
        st, body = await call(http, url, "POST", f"/channels/{cid}/rotate", admin,
                              {"credentials": {"app_secret": SECRET}})
        assert st == 200, body
        assert await webhook(http, url, "m2") == 200  # no restart

        assert (await call(http, url, "POST", f"/channels/{cid}/disable", admin))[1]["channel"]["enabled"] is False
        assert await webhook(http, url, "m3") == 401  # no enabled inbox knows the secret
        assert (await call(http, url, "POST", f"/channels/{cid}/enable", admin))[1]["channel"]["enabled"] is True
        assert await webhook(http, url, "m4") == 200

        st, body = await call(http, url, "PATCH", f"/channels/{cid}", admin, {"settings": {"graph_version": "23"}})
        assert st == 400 and body["error"]["details"]["field"] == "settings.graph_version"
        st, body = await call(http, url, "PATCH", f"/channels/{cid}", admin,
                              {"name": "Shop Page", "settings": {"graph_version": "v22.0"}})
        assert st == 200 and body["channel"]["name"] == "Shop Page"
        assert body["channel"]["settings"]["graph_version"] == "v22.0"
        st, body = await call(http, url, "GET", "/channels", admin)
        assert [c["channel_id"] for c in body["channels"]] == [cid]
        assert (await call(http, url, "GET", "/channels", other.admin_token))[1]["channels"] == []

        assert (await call(http, url, "DELETE", f"/channels/{cid}", admin))[0] == 200
        assert (await call(http, url, "GET", f"/channels/{cid}", admin))[0] == 404
        assert await webhook(http, url, "m5") == 401

        # the audit trail: every change, newest first, a removed inbox's too; never a value
        st, body = await call(http, url, "GET", f"/channels/audit?channel_id={cid}", admin)
        assert st == 200, body
        assert [e["action"] for e in body["entries"]] == ["remove", "update", "enable", "disable", "rotate", "add"]
        assert body["entries"][4]["fields"] == ["credentials.app_secret"]
        assert {e["actor"] for e in body["entries"]} == {f"agent:{nt.admin.id}"}
        assert SECRET not in str(body) and "wrong-secret" not in str(body)
        assert (await call(http, url, "GET", "/channels/audit", other.admin_token))[1]["entries"] == []
        assert (await call(http, url, "GET", "/channels/audit", agent_token))[0] == 403
        assert (await call(http, url, "GET", "/channels/audit?limit=0", admin))[0] == 400

    actions = [r.getMessage().split()[0] for r in caplog.records if r.name == "connectors.audit"]
    assert actions == ["channel.add", "channel.rotate", "channel.disable", "channel.enable", "channel.update",
                       "channel.remove"]
    assert not any(SECRET in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
async def test_changes_on_one_node_apply_on_another(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gateways sharing PostgreSQL: an inbox added, rotated, disabled and removed through
    node A's API is in force for the webhooks node B receives, with no restart."""
    monkeypatch.setenv("MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    hub = MemoryHub()

    def config(name: str) -> Config:
        return node_config(tmp_path, name, PG_DSN, schema)

    try:
        async with (run_gateway(config("node-a"), hub=hub) as a, run_gateway(config("node-b"), hub=hub) as b,
                    aiohttp.ClientSession() as http):
            nt = await a.tenant()
            admin = nt.admin_token
            st, body = await call(http, a.url, "POST", "/channels", admin, {
                "kind": "facebook", "name": "Page", "settings": {"address": PAGE_ID},
                "credentials": {"page_access_token": "EAAG-tok", "app_secret": "wrong", "verify_token": "v"}})
            assert st == 201, body
            cid = body["channel"]["channel_id"]
            assert await webhook(http, b.url, "n1") == 401
            assert (await call(http, a.url, "POST", f"/channels/{cid}/rotate", admin,
                               {"credentials": {"app_secret": SECRET}}))[0] == 200
            assert await webhook(http, b.url, "n2") == 200
            assert (await call(http, a.url, "POST", f"/channels/{cid}/disable", admin))[0] == 200
            assert await webhook(http, b.url, "n3") == 401
            assert (await call(http, b.url, "POST", f"/channels/{cid}/enable", admin))[0] == 200  # either node
            assert await webhook(http, a.url, "n4") == 200
            assert (await call(http, a.url, "DELETE", f"/channels/{cid}", admin))[0] == 200
            assert await webhook(http, b.url, "n5") == 401
    finally:
        await drop_schema(schema, PG_DSN)


async def test_channel_test_over_rest(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """POST /channels/{id}/test: the report (200, passed or not) for the tenant's admins only;
    audited with each check's outcome, never a secret."""
    caplog.set_level(logging.INFO, logger="connectors.audit")
    async with (FakeGraph({"EAAG-tok": PAGE_ID}) as graph, run_gateway(make_config(tmp_path)) as rg,
                aiohttp.ClientSession() as http):
        graph.app_secret = SECRET
        nt, other = await rg.tenant(), await rg.tenant("Other")
        st, body = await call(http, rg.url, "POST", "/channels", nt.admin_token, {
            "kind": "facebook", "name": "Page", "settings": {"address": PAGE_ID, "api_base": graph.url},
            "credentials": {"page_access_token": "EAAG-tok", "app_secret": "wrong-secret", "verify_token": "v"}})
        assert st == 201, body
        cid = body["channel"]["channel_id"]
        st, body = await call(http, rg.url, "POST", f"/channels/{cid}/test", nt.admin_token)
        assert st == 200 and body["test"]["passed"] is False, body
        assert [(c["check"], c["ok"], c.get("field")) for c in body["test"]["checks"]] == [
            ("page_token", True, None), ("app_secret", False, "credentials.app_secret")]
        _, agent_token = await rg.agent_token(nt.tenant.id)
        assert (await call(http, rg.url, "POST", f"/channels/{cid}/test", agent_token))[0] == 403
        assert (await call(http, rg.url, "POST", f"/channels/{cid}/test", other.admin_token))[0] == 404
        await call(http, rg.url, "POST", f"/channels/{cid}/rotate", nt.admin_token,
                   {"credentials": {"app_secret": SECRET}})
        st, body = await call(http, rg.url, "POST", f"/channels/{cid}/test", nt.admin_token)
        assert st == 200 and body["test"]["passed"] is True and body["test"]["channel_id"] == cid
    tests = [r.getMessage() for r in caplog.records if r.getMessage().startswith("channel.test")]
    assert len(tests) == 2 and "fields=page_token:ok,app_secret:failed" in tests[0]
    assert not any(SECRET in r.getMessage() or "wrong-secret" in r.getMessage() for r in caplog.records)
