"""Each ended call leaves one system entry in its conversation's stream, in seq order:
answered (with its duration), declined or missed; its client_id is the call's id, so a
client finds the call (and its recording) with `call:list`; written once."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from gateway.calls.store import CallRow
from gateway.calls.timeline import entry_client_id, entry_text, record_call
from tests.calls.support import Endpoint, calls_of, endpoint
from tests.calls.test_call_flow import setup_parties
from tests.support.server import new_client_id


def entries(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in msgs if m["author"]["type"] == "system"]


async def test_answered_declined_and_missed_calls_in_the_timeline(call_gateway):
    rg = call_gateway
    nt, agent_id, token, ag, v, conv = await setup_parties(rg)
    cid = conv["id"]
    await ag.call("conversation:watch", {"conversation_id": cid, "after_seq": 0})
    try:
        async def say(text: str) -> None:
            assert (await v.call("message:send", {"conversation_id": cid, "client_id": new_client_id(),
                                                  "text": text}))["ok"]

        async def ring() -> tuple[str, Endpoint]:
            caller = endpoint(440)
            ack = await v.call("call:start", {"conversation_id": cid, "sdp": await caller.offer()}, timeout=10)
            assert ack["ok"], ack
            await caller.answer(ack["sdp"])
            return ack["call"]["id"], caller

        await say("trước cuộc gọi")
        # answered, then hung up by the agent
        answered, caller = await ring()
        callee = endpoint(660)
        acc = await ag.call("call:accept", {"call_id": answered, "sdp": await callee.offer()}, timeout=10)
        assert acc["ok"], acc
        await callee.answer(acc["sdp"])
        assert (await ag.call("call:hangup", {"call_id": answered}))["ok"]
        await caller.close()
        await callee.close()
        await say("giữa")
        # declined by the only agent
        declined, caller = await ring()
        assert (await ag.call("call:decline", {"call_id": declined}))["ok"]
        await caller.close()
        # missed: the visitor gives up while it rings
        missed, caller = await ring()
        assert (await v.call("call:hangup", {"call_id": missed}))["ok"]
        await caller.close()
        await ag.wait_for(lambda: len(entries(ag.messages(cid))) == 3, timeout=20)

        hist = await ag.call("messages:history", {"conversation_id": cid, "limit": 50})
        texts = [(m["author"]["type"], m["text"]) for m in hist["messages"]]
        assert texts[0] == ("contact", "trước cuộc gọi")
        system = entries(hist["messages"])
        assert [m["client_id"] for m in system] == [str(uuid.UUID(hex=c)) for c in (answered, declined, missed)]
        assert system[0]["text"].startswith("Call answered · 0:0")
        assert [m["text"] for m in system[1:]] == ["Call declined", "Missed call"]
        assert all(m["author"]["id"] is None for m in system)
        seqs = [m["seq"] for m in hist["messages"]]
        assert seqs == sorted(seqs)
        assert texts.index(("contact", "giữa")) == texts.index(("system", system[0]["text"])) + 1
        # the visitor's stream has them too (no recording in them)
        await v.wait_for(lambda: len(entries(v.messages(cid))) == 3)
        # call:list maps each entry to its call
        calls = {c["id"]: c for c in (await ag.call("call:list", {"conversation_id": cid}))["calls"]}
        assert {entry_client_id(c) for c in calls} == {m["client_id"] for m in system}
        assert calls[answered]["duration"] is not None and calls[answered]["recording_id"]
        # ending a call again writes no second entry
        row = await calls_of(rg).store.get(nt.tenant.id, missed)
        assert row is not None
        await record_call(rg.gw.chat, row)
        hist = await ag.call("messages:history", {"conversation_id": cid, "limit": 50})
        assert len(entries(hist["messages"])) == 3
    finally:
        await v.close()
        await ag.close()


def test_entry_text_by_outcome() -> None:
    def row(**kw: Any) -> CallRow:
        base = CallRow("a" * 32, "t", "c", "k", None, "n", "ended", 100.0, None, 130.0, "missed", 0.0, None)
        return replace(base, **kw)

    assert entry_text(row(agent_id="g", answered_at=101.0, end_reason="caller_hangup", duration=125.4)) == \
        "Call answered · 2:05"
    assert entry_text(row(answered_at=101.0, end_reason="node_lost", duration=0.4)) == "Call answered · 0:00"
    assert entry_text(row(end_reason="declined")) == "Call declined"
    for reason in ("missed", "cancelled", "connection_lost", "node_lost", "shutdown"):
        assert entry_text(row(end_reason=reason)) == "Missed call"
    assert entry_client_id("0123456789abcdef0123456789abcdef") == "01234567-89ab-cdef-0123-456789abcdef"
