"""The stock npm socket.io-client (Node) talks to the gateway over websocket."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests.support.server import RunningGateway

NODE_DIR = Path(__file__).resolve().parents[1] / "node"

pytestmark = pytest.mark.node


async def test_node_socketio_client_converses(gateway: RunningGateway) -> None:
    node = shutil.which("node")
    assert node, "node is required for this test (scripts/test.sh installs the client)"
    assert (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "run npm ci in tests/node"
    nt = await gateway.tenant()
    proc = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "conversation.mjs"), gateway.url, nt.tenant.widget_key, nt.admin_token,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report == {
        "session_has_token": True,
        "sent_seq": 1,
        "again_seq": 1,
        "again_duplicate": True,
        "agent_received": "hello from node",
        "reply_seq": 2,
        "visitor_received": "hi node",
        "bad_code": "bad_request",
    }
