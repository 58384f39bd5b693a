"""Events on the lean transport take one task from frame to handler
(`SafeAsyncServer.event_task`); the stock path's checks hold on it: reserved names are
renamed, malformed packets dropped, events on a namespace not joined ignored, and the
connection goes on working after each."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from gateway.domain import ConversationFilter
from tests.support.server import make_config, run_gateway
from tests.transport.rawws import RawClient


async def _next_ack(c: RawClient) -> tuple[int, Any]:
    while True:
        kind, body = await c.recv_packet()
        if kind == "ack":
            return body  # type: ignore[no-any-return]


async def test_events_on_the_fast_path(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        lean = rg.gw.lean
        assert lean is not None and lean.event_task is not None
        t = await rg.tenant()
        c = await RawClient.connect(rg.url)
        try:
            # before joining /visitor: the event is ignored (no ack), nothing is created
            c.send_text('42/visitor,1["conversation:start",{}]')
            c.connect_ns("/visitor", {"widget_key": t.tenant.widget_key})
            kind, _ = await c.recv_packet()
            assert kind == "connect"
            # reserved names and malformed events are answered like unknown events
            for raw, code in [('42/visitor,2["connect",{}]', "unknown_event"),
                              ('42/visitor,3["disconnect"]', "unknown_event"),
                              ("42/visitor,4[1,2]", "unknown_event"),
                              ("42/visitor,5[]", "unknown_event")]:
                c.send_text(raw)
                ack_id, data = await _next_ack(c)
                assert ack_id == int(raw.split(",")[1][0]), raw
                assert data[0]["ok"] is False and data[0]["error"]["code"] == code, (raw, data)
            # a packet that does not decode is dropped without an answer
            c.send_text("42/visitor,6[")
            # and the connection still works: a conversation, a message, its ack
            aid = c.emit("/visitor", "conversation:start", {})
            ack_id, data = await _next_ack(c)
            assert ack_id == aid and data[0]["ok"], data
            conv = data[0]["conversation"]["id"]
            mid = c.emit("/visitor", "message:send", {"conversation_id": conv, "client_id": str(uuid.uuid4()),
                                                      "text": "xin chào"})
            ack_id, data = await _next_ack(c)
            assert ack_id == mid and data[0]["ok"] and data[0]["message"]["seq"] == 1, data
            assert [m.text for m in await rg.gw.store.get_messages(t.tenant.id, conv)] == ["xin chào"]
            # only the conversation:start after joining created one
            assert [x.id for x in await rg.gw.store.list_conversations(t.tenant.id, ConversationFilter())] == [conv]
            assert lean.fast_events == 8  # every event frame, the malformed and the early one included
        finally:
            await c.close()
