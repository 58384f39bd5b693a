"""Missed, cancelled and declined calls; payload validation."""

from __future__ import annotations

import gc
import logging

import pytest

from tests.calls.support import calls_of, endpoint
from tests.calls.test_call_flow import setup_parties
from tests.support.server import agent, make_config, run_gateway


@pytest.fixture
async def short_ring(tmp_path, loopback_ice, monkeypatch):
    monkeypatch.setenv("CALL_RING_TIMEOUT", "0.8")
    async with run_gateway(make_config(tmp_path)) as rg:
        yield rg


async def _ended(client, call_id):
    await client.wait_for(lambda: any(e["call"]["id"] == call_id and e["call"]["state"] == "ended"
                                      for e in client.of("call:updated")), timeout=5)
    return [e["call"] for e in client.of("call:updated") if e["call"]["id"] == call_id]


async def test_missed_call(short_ring):
    rg = short_ring
    nt, _, _, ag, v, conv = await setup_parties(rg)
    caller = endpoint(440)
    try:
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        call_id = ack["call"]["id"]
        events = await _ended(v, call_id)
        assert [e["state"] for e in events] == ["ringing", "ended"]
        assert events[-1]["end_reason"] == "missed" and events[-1]["duration"] == 0
        agent_events = await _ended(ag, call_id)
        assert agent_events[-1]["end_reason"] == "missed"
        row = await calls_of(rg).store.get(nt.tenant.id, call_id)
        assert row and row.state == "ended" and row.end_reason == "missed" and row.answered_at is None
        assert row.recording_id  # voicemail-style: what the caller said while ringing
        late = await ag.call("call:accept", {"call_id": call_id, "sdp": await endpoint(660).offer()})
        assert not late["ok"] and late["error"]["code"] == "not_found"
    finally:
        await caller.close()
        await v.close()
        await ag.close()


async def test_caller_hangs_up_before_answer(call_gateway):
    rg = call_gateway
    nt, _, _, ag, v, conv = await setup_parties(rg)
    caller = endpoint(440)
    try:
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        call_id = ack["call"]["id"]
        again = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await endpoint(1).offer()})
        assert not again["ok"] and again["error"]["code"] == "limit_reached"
        h = await v.call("call:hangup", {"call_id": call_id})
        assert h["ok"] and h["call"]["end_reason"] == "cancelled"
        events = await _ended(ag, call_id)
        assert [e["state"] for e in events] == ["ringing", "ended"]
        row = await calls_of(rg).store.get(nt.tenant.id, call_id)
        assert row and row.end_reason == "cancelled" and row.duration == 0
        lst = await v.call("call:list", {"conversation_id": conv["id"]})
        assert [c["end_reason"] for c in lst["calls"]] == ["cancelled"]
    finally:
        await caller.close()
        await v.close()
        await ag.close()


async def test_all_online_agents_decline(call_gateway):
    rg = call_gateway
    nt, _, _, ag, v, conv = await setup_parties(rg)
    caller = endpoint(440)
    try:
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        d = await ag.call("call:decline", {"call_id": ack["call"]["id"]})
        assert d["ok"]
        events = await _ended(v, ack["call"]["id"])
        assert events[-1]["end_reason"] == "declined"
    finally:
        await caller.close()
        await v.close()
        await ag.close()


async def test_bad_payloads(call_gateway):
    rg = call_gateway
    nt, _, _, ag, v, conv = await setup_parties(rg)
    try:
        cases = [
            (v, "call:start", {"conversation_id": conv["id"]}, "bad_request"),
            (v, "call:start", {"conversation_id": conv["id"], "sdp": 5}, "bad_request"),
            (v, "call:start", {"conversation_id": conv["id"], "sdp": "hello"}, "bad_request"),
            (v, "call:start", {"conversation_id": conv["id"], "sdp": "v=0\r\n" + "a" * 70000}, "payload_too_large"),
            (v, "call:start", {"conversation_id": conv["id"], "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"},
             "bad_request"),
            (v, "call:start", {"conversation_id": "f" * 32, "sdp": "v=0\r\n"}, "not_found"),
            (v, "call:start", {"conversation_id": "nope", "sdp": "v=0\r\n"}, "bad_request"),
            (v, "call:hangup", {"call_id": "f" * 32}, "not_found"),
            (ag, "call:accept", {"call_id": "f" * 32, "sdp": "v=0\r\n"}, "not_found"),
            (ag, "call:accept", {"call_id": 3}, "bad_request"),
            (ag, "call:decline", {}, "bad_request"),
        ]
        for client, event, payload, code in cases:
            r = await client.call(event, payload)
            assert not r["ok"] and r["error"]["code"] == code, (event, payload if len(str(payload)) < 200 else "", r)
        # a visitor cannot accept; the namespace has no such event
        r = await v.call("call:accept", {"call_id": "f" * 32, "sdp": "v=0"})
        assert not r["ok"] and r["error"]["code"] == "unknown_event"
        assert calls_of(rg).active == {}
    finally:
        await v.close()
        await ag.close()


def _without_fingerprint(sdp: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith("a=fingerprint:"))


async def test_offer_without_dtls_fingerprint_is_refused_at_once(call_gateway, caplog):
    """An offer DTLS-SRTP cannot secure is `bad_request` naming the fingerprint, for the caller's
    `call:start` and the agent's `call:accept`; no call rings, and nothing fails later in a task."""
    caplog.set_level(logging.WARNING)
    rg = call_gateway
    nt, _, _, ag, v, conv = await setup_parties(rg)
    caller, bad_caller, bad_agent = endpoint(440), endpoint(1), endpoint(2)
    try:
        r = await v.call("call:start", {"conversation_id": conv["id"], "sdp": _without_fingerprint(
            await bad_caller.offer())}, timeout=10)
        assert not r["ok"] and r["error"]["code"] == "bad_request", r
        assert "fingerprint" in r["error"]["message"] and r["error"]["details"] == {"field": "sdp"}
        assert calls_of(rg).active == {} and ag.of("call:ringing") == []
        ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()}, timeout=10)
        assert ack["ok"], ack
        r = await ag.call("call:accept", {"call_id": ack["call"]["id"], "sdp": _without_fingerprint(
            await bad_agent.offer())}, timeout=10)
        assert not r["ok"] and r["error"]["code"] == "bad_request" and "fingerprint" in r["error"]["message"], r
        hung = await v.call("call:hangup", {"call_id": ack["call"]["id"]})
        assert hung["ok"], hung
    finally:
        for ep in (caller, bad_caller, bad_agent):
            await ep.close()
        await v.close()
        await ag.close()
    gc.collect()  # an unretrieved task exception is logged when the task is collected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_declined_once_the_other_online_agent_has_left(tmp_path, loopback_ice, monkeypatch):
    """Issue 31: A declines while B (online) may still answer; B then closes their console:
    every connected online agent has declined, so the call ends `declined` (checked each
    second while it rings) instead of ringing to the timeout as `missed`."""
    monkeypatch.setenv("CALL_RING_TIMEOUT", "60")
    async with run_gateway(make_config(tmp_path)) as rg:
        nt, _, _, ag, v, conv = await setup_parties(rg)
        _, token_b = await rg.agent_token(nt.tenant.id)
        b = await agent(rg.url, token_b)
        await b.call("presence:set", {"status": "online"})
        caller = endpoint(440)
        try:
            ack = await v.call("call:start", {"conversation_id": conv["id"], "sdp": await caller.offer()},
                               timeout=10)
            call_id = ack["call"]["id"]
            assert (await ag.call("call:decline", {"call_id": call_id}))["ok"]
            row = await calls_of(rg).store.get(nt.tenant.id, call_id)
            assert row and row.state == "ringing"  # B may still answer
            await b.close()
            events = await _ended(v, call_id)
            assert events[-1]["end_reason"] == "declined"
        finally:
            await caller.close()
            await v.close()
            await ag.close()
