"""Events from frame to handler on the edge's Socket.IO server: reserved names are
renamed (answered `unknown_event`) and the connection goes on working after each; a packet
that does not decode, or an event on a namespace not joined, closes the session, as the
reference server does."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.core.domain import ConversationFilter
from tests.support.server import make_config, run_gateway
from tests.support.waits import until
from tests.transport.rawws import RawClient


async def _next_ack(c: RawClient) -> tuple[int, Any]:
    while True:
        kind, body = await c.recv_packet()
        if kind == "ack":
            return body  # type: ignore[no-any-return]


async def joined_visitor(url: str, widget_key: str) -> RawClient:
    """A raw client that has joined /visitor (its CONNECT answered)."""
    c = await RawClient.connect(url)
    c.connect_ns("/visitor", {"widget_key": widget_key})
    kind, _ = await c.recv_packet()
    assert kind == "connect"
    return c


async def test_events_on_the_fast_path(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        t = await rg.tenant()
        c = await joined_visitor(rg.url, t.tenant.widget_key)
        try:
            # reserved names and malformed events are answered like unknown events
            for raw, code in [('42/visitor,2["connect",{}]', "unknown_event"),
                              ('42/visitor,3["disconnect"]', "unknown_event"),
                              ('42/visitor,4["connect_error",{}]', "unknown_event"),
                              ('42/visitor,5["no:such:event",{}]', "unknown_event")]:
                c.send_text(raw)
                ack_id, data = await _next_ack(c)
                assert ack_id == int(raw.split(",")[1][0]), raw
                assert data[0]["ok"] is False and data[0]["error"]["code"] == code, (raw, data)
            # the connection still works: a conversation, a message, its ack
            aid = c.emit("/visitor", "conversation:start", {})
            ack_id, data = await _next_ack(c)
            assert ack_id == aid and data[0]["ok"], data
            conv = data[0]["conversation"]["id"]
            mid = c.emit("/visitor", "message:send", {"conversation_id": conv, "client_id": str(uuid.uuid4()),
                                                      "text": "xin chào"})
            ack_id, data = await _next_ack(c)
            assert ack_id == mid and data[0]["ok"] and data[0]["message"]["seq"] == 1, data
            assert [m.text for m in await rg.gw.store.get_messages(t.tenant.id, conv)] == ["xin chào"]
            assert [x.id for x in await rg.gw.store.list_conversations(t.tenant.id, ConversationFilter())] == [conv]
        finally:
            await c.close()


@pytest.mark.parametrize("raw", ['42/agent,1["conversation:start",{}]',
                                 "42/visitor,6[", "42/visitor,7[1,2]", "42/visitor,8[]", "47/visitor,", "4x",
                                 '45/visitor,1-["ev",{"_placeholder":true,"num":0}]'])
async def test_a_packet_that_does_not_decode_closes_the_session(tmp_path: Path, raw: str) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        t = await rg.tenant()
        c = await joined_visitor(rg.url, t.tenant.widget_key)
        try:
            c.send_text(raw)
            assert await c.closed(), raw
            await until(lambda: not rg.gw.realtime.conns)  # the /visitor connection was cleaned up
            assert rg.gw.realtime.sockets.malformed == 1
        finally:
            await c.close()
