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


async def test_a_long_poll_whose_connection_dropped_frees_the_session_for_the_next(tmp_path: Path) -> None:
    """A client's waiting GET is lost with its TCP connection (a phone changing networks):
    the session is not left with a GET that nobody reads, so the client's next GET, on a
    new connection, is served (not refused as concurrent) and gets what was queued."""
    import aiohttp

    from tests.support.waits import until

    async with run_gateway(make_config(tmp_path)) as rg:
        nt = await rg.tenant()
        engine = rg.gw.realtime.sockets.engine
        base = f"{rg.url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http, http.get(base) as r:
            sid = json.loads((await r.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        lost = aiohttp.ClientSession()
        pending = asyncio.create_task(lost.get(url))
        await until(lambda: engine.sessions[sid].poll_get is not None)
        pending.cancel()
        await lost.close()  # the connection under the waiting GET is gone
        await until(lambda: engine.sessions[sid].poll_get is None)
        async with aiohttp.ClientSession() as http:
            auth = json.dumps({"widget_key": nt.tenant.widget_key})
            async with http.post(url, data=f"40/visitor,{auth}") as r:
                assert r.status == 200
            async with http.get(url) as r:
                assert r.status == 200 and (await r.text()).startswith("40/visitor,")
