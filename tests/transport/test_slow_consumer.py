"""A client that stops reading is dropped at the write-buffer high-water mark; the others
are unaffected; when it comes back it resumes by (epoch, seq) with nothing lost."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.support.server import agent, make_config, new_client_id, run_gateway, visitor
from tests.transport.rawws import RawClient

HIGH_WATER = 64 * 1024
TEXT = "y" * 30_000


async def test_stalled_reader_is_dropped_and_resumes(tmp_path) -> None:
    config = make_config(tmp_path, max_text_chars=40_000, max_event_bytes=128 * 1024,
                         visitor_messages_per_sec=1e6, visitor_messages_burst=1e6,
                         ip_messages_per_sec=1e6, ip_messages_burst=1e6)
    config = replace(config, server=replace(config.server, ws_high_water=HIGH_WATER))
    async with run_gateway(config) as rg:
        nt = await rg.tenant()
        v = await visitor(rg.url, nt.tenant.widget_key)
        conv = (await v.call("conversation:start", {}))["conversation"]
        healthy = await agent(rg.url, nt.admin_token)
        assert (await healthy.call("conversation:watch", {"conversation_id": conv["id"]}))["ok"]

        # the stalled agent: a tiny receive buffer, then it never reads again
        stalled = await RawClient.connect(rg.url, rcvbuf=4096)
        stalled.connect_ns("/agent", {"token": nt.admin_token})
        while (await stalled.recv_packet())[0] != "connect":
            pass
        ack_id = stalled.emit("/agent", "conversation:watch", {"conversation_id": conv["id"]})
        while True:
            kind, body = await stalled.recv_packet()
            if kind == "ack" and body[0] == ack_id:
                assert body[1][0]["ok"]
                break
        engine = rg.gw.realtime.sockets.engine
        sock = engine.sessions[stalled.eio_sid].ws
        assert sock is not None

        sent = 0
        for _ in range(400):
            ack = await v.call("message:send", {"conversation_id": conv["id"], "client_id": new_client_id(),
                                                "text": TEXT})
            assert ack["ok"], ack
            sent += 1
            if sock.closed:
                break
            # what the server holds for it never exceeds the mark by more than one message
            assert sock._pending_size <= HIGH_WATER + len(TEXT) + 512
            t = sock.transport
            if t is not None:
                assert t.get_write_buffer_size() <= HIGH_WATER + 2 * (len(TEXT) + 512)
        assert sock.closed and sock.transport is None, "the stalled reader was never dropped"
        assert engine.dropped_slow >= 1
        assert stalled.eio_sid not in engine.sessions
        await stalled.close()

        # the healthy agent got everything, in order, nothing lost
        await healthy.wait_for(lambda: len(healthy.messages(conv["id"])) >= sent, timeout=30)
        assert [m["seq"] for m in healthy.messages(conv["id"])] == list(range(1, sent + 1))

        # the dropped agent comes back and resumes from what it had (seq 0)
        back = await agent(rg.url, nt.admin_token)
        res = await back.call("resume", {"conversations": [{"conversation_id": conv["id"],
                                                            "epoch": conv["epoch"], "seq": 0}]})
        assert res["ok"] and res["results"][0]["ok"], res
        await back.wait_for(lambda: len(back.messages(conv["id"])) >= sent, timeout=30)
        assert [m["seq"] for m in back.messages(conv["id"])] == list(range(1, sent + 1))
        for c in (v, healthy, back):
            await c.close()
        await asyncio.sleep(0)
