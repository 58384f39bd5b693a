"""docs/connectors.md "Walk-through: from a wrong secret to a first message", step by step, as an
operator does it: a real gateway process (`python -m gateway serve`, embedded SQLite), the CLI
in other processes on the same data directory, and the fake Graph API in Meta's wire format as
the platform. A Facebook Page inbox added with a wrong App Secret fails `channel test` (and a
webhook Meta signs with the right secret is refused); after `channel rotate` the test passes
and the webhook lands as a conversation, with no restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.connectors.facebook.fake_graph import FakeGraph, encode_payload, signed_headers
from tests.connectors.facebook.payloads import PAGE_ID, delivery, messaging_entry, text_event
from tests.support.procs import ROOT, Cluster

PAGE_TOKEN, APP_SECRET = "EAAG-walkthrough-page-token", "the-right-app-secret"


async def test_wrong_secret_test_fails_rotate_test_passes_webhook_lands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_KEY", "DATABASE_URL", "GATEWAY_CONFIG")}
    env.update(DATA_DIR=str(tmp_path / "data"))
    gw = Cluster(env, tmp_path)

    async def cli(*args: str) -> tuple[int, Any, str]:
        r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway", *args], env=env, cwd=ROOT,
                                    capture_output=True, text=True, timeout=120)
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr

    async with FakeGraph({PAGE_TOKEN: PAGE_ID}) as graph, aiohttp.ClientSession() as http:
        graph.app_secret = APP_SECRET  # the Meta app's App Secret

        # 1. a tenant, and the gateway running
        _, tenant, _ = await cli("tenant", "create", "--name", "Shop")
        node = gw.start("node-1")
        try:
            await gw.wait_ready(node)

            # 2. the inbox, added with a wrong App Secret
            rc, ch, err = await cli(
                "channel", "add", "--tenant", tenant["tenant_id"], "--kind", "facebook", "--name", "Shop Page",
                "--settings-json", json.dumps({"address": PAGE_ID, "api_base": graph.url}),
                "--credentials-json", json.dumps({"page_access_token": PAGE_TOKEN, "app_secret": "a-wrong-secret",
                                                  "verify_token": "my-verify-token"}))
            assert rc == 0, err
            cid = ch["channel_id"]

            # 3. channel test fails, naming the check and the field
            rc, report, _ = await cli("channel", "test", "--tenant", tenant["tenant_id"], "--channel", cid)
            assert rc == 1 and report["passed"] is False
            assert [(c["check"], c["ok"]) for c in report["checks"]] == [("page_token", True), ("app_secret", False)]
            assert report["checks"][1]["field"] == "credentials.app_secret"
            assert "a-wrong-secret" not in json.dumps(report)

            # a message Meta signs with the app's real secret is refused meanwhile
            async def webhook(mid: str) -> int:
                body = encode_payload(delivery(messaging_entry(text_event(mid, "Shop ơi, còn hàng không?"))))
                async with http.post(f"{node.url}/webhooks/facebook", data=body,
                                     headers=signed_headers(APP_SECRET, body)) as r:
                    return r.status

            assert await webhook("mid.walk-1") == 401

            # 4. rotate the App Secret
            rc, _, err = await cli("channel", "rotate", "--tenant", tenant["tenant_id"], "--channel", cid,
                                   "--credentials-json", json.dumps({"app_secret": APP_SECRET}))
            assert rc == 0, err

            # 5. channel test passes
            rc, report, _ = await cli("channel", "test", "--tenant", tenant["tenant_id"], "--channel", cid)
            assert rc == 0 and report["passed"] is True, report

            # 6. a webhook lands: a conversation with the customer's message, no restart
            assert await webhook("mid.walk-2") == 200
            async with http.get(f"{node.url}/api/v1/conversations",
                                headers={"Authorization": f"Bearer {tenant['admin_token']}"}) as r:
                convs = (await r.json())["conversations"]
            assert [(c["channel"], c["last_message"]["text"]) for c in convs] == [
                ("facebook", "Shop ơi, còn hàng không?")]
        finally:
            node.kill()
