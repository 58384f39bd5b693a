"""Both websocket transports (WS_TRANSPORT=lean and stock) serve the stock clients, and the
lean one really is in use by default; long-polling stays on engineio's stock path."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import socketio

from gateway.transport import LeanSocket
from tests.support.server import agent, make_config, new_client_id, run_gateway, visitor

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.mark.parametrize("transport", ["lean", "stock"])
async def test_python_clients_converse(tmp_path, transport: str) -> None:
    config = make_config(tmp_path)
    config = replace(config, server=replace(config.server, ws_transport=transport))
    async with run_gateway(config) as rg:
        nt = await rg.tenant()
        v = await visitor(rg.url, nt.tenant.widget_key)
        a = await agent(rg.url, nt.admin_token)
        kinds = {type(s).__name__ for s in rg.gw.realtime.sio.eio.sockets.values()}
        assert kinds == ({"LeanSocket"} if transport == "lean" else {"AsyncSocket"})
        conv = (await v.call("conversation:start", {}))["conversation"]
        assert (await a.call("conversation:watch", {"conversation_id": conv["id"]}))["ok"]
        for i in range(20):
            ack = await v.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                "text": f"m{i}"})
            assert ack["ok"] and ack["message"]["seq"] == i + 1
        await a.wait_for(lambda: len(a.messages(conv["id"])) == 20)
        assert [m["text"] for m in a.messages(conv["id"])] == [f"m{i}" for i in range(20)]
        await v.close()
        await a.close()


async def test_long_polling_and_upgrade_stay_on_the_stock_path(tmp_path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        nt = await rg.tenant()
        sio = socketio.AsyncClient(reconnection=False)
        got: list[dict[str, object]] = []
        sio.on("session", lambda data: got.append(data), namespace="/visitor")
        await sio.connect(rg.url, namespaces=["/visitor"], auth={"widget_key": nt.tenant.widget_key},
                          transports=["polling", "websocket"], wait_timeout=5)
        ack = await sio.call("conversation:start", {}, namespace="/visitor", timeout=5)
        assert ack["ok"]
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got
        assert not any(type(s) is LeanSocket for s in rg.gw.realtime.sio.eio.sockets.values())
        await sio.disconnect()


@pytest.mark.node
@pytest.mark.parametrize("transport", ["lean", "stock"])
async def test_node_client_on_both_transports(tmp_path, transport: str) -> None:
    node = shutil.which("node")
    assert node and (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "needs node and tests/node"
    config = make_config(tmp_path)
    config = replace(config, server=replace(config.server, ws_transport=transport))
    async with run_gateway(config) as rg:
        nt = await rg.tenant()
        proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "conversation.mjs"), rg.url, nt.tenant.widget_key, nt.admin_token,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        report = json.loads(out.decode().strip().splitlines()[-1])
        assert report["agent_received"] == "hello from node" and report["visitor_received"] == "hi node"
