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


async def run_node_conversation(url: str, widget_key: str, agent_token: str,
                                transports: str = "websocket") -> dict[str, object]:
    """tests/node/conversation.mjs against `url`: its JSON report."""
    node = shutil.which("node")
    assert node, "node is required for this test (scripts/test.sh installs the client)"
    assert (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "run npm ci in tests/node"
    proc = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "conversation.mjs"), url, widget_key, agent_token, transports,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    report: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return report


EXPECTED = {
    "session_has_token": True,
    "sent_seq": 1,
    "again_seq": 1,
    "again_duplicate": True,
    "agent_received": "hello from node",
    "reply_seq": 2,
    "visitor_received": "hi node",
    "bad_code": "bad_request",
}


async def test_node_socketio_client_converses(gateway: RunningGateway) -> None:
    nt = await gateway.tenant()
    assert await run_node_conversation(gateway.url, nt.tenant.widget_key, nt.admin_token) == EXPECTED
