"""The stock clients converse over every transport the edge serves: websocket alone,
long-polling alone, and polling upgraded to websocket (python-socketio and the npm
socket.io-client)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.support.server import agent, make_config, new_client_id, run_gateway, visitor

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "upgrade": ["polling", "websocket"]}


@pytest.mark.parametrize("kind", list(TRANSPORTS))
async def test_python_clients_converse(tmp_path: Path, kind: str) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        nt = await rg.tenant()
        v = await visitor(rg.url, nt.tenant.widget_key, options={"transports": TRANSPORTS[kind]})
        a = await agent(rg.url, nt.admin_token, transports=TRANSPORTS[kind])
        conv = (await v.call("conversation:start", {}))["conversation"]
        assert (await a.call("conversation:watch", {"conversation_id": conv["id"]}))["ok"]
        for i in range(20):
            ack = await v.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                "text": f"m{i}"})
            assert ack["ok"] and ack["message"]["seq"] == i + 1
        await a.wait_for(lambda: len(a.messages(conv["id"])) == 20)
        assert [m["text"] for m in a.messages(conv["id"])] == [f"m{i}" for i in range(20)]
        expected = "polling" if kind == "polling" else "websocket"
        assert {s.transport for s in rg.gw.realtime.sockets.engine.sessions.values()} == {expected}
        if kind == "upgrade":
            assert rg.gw.realtime.sockets.engine.upgrades == 2
        await v.close()
        await a.close()


@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_node_client_on_both_transports(tmp_path: Path, transport: str) -> None:
    node = shutil.which("node")
    assert node and (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "needs node and tests/node"
    async with run_gateway(make_config(tmp_path)) as rg:
        nt = await rg.tenant()
        proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "conversation.mjs"), rg.url, nt.tenant.widget_key, nt.admin_token, transport,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        report = json.loads(out.decode().strip().splitlines()[-1])
        assert report["agent_received"] == "hello from node" and report["visitor_received"] == "hi node"
