"""Call, key and catalogue tables on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets

import pytest

from gateway.calls.store import CallRow, CallStore
from recording.catalogue import Catalogue, RecordingRow
from recording.keys import KeyRing, KeyShredded
from recording.masterkey import Sealer
from tests.contract.test_store_contract import backend, new_world, store

__all__ = ["backend", "store"]


async def test_calls_keys_catalogue(store) -> None:
    w = await new_world(store)
    other = await new_world(store, "Other")
    db = store
    calls = CallStore(db)
    row = CallRow("a" * 32, w.tenant.id, w.conv.id, w.contact.id, None, "n1", "ringing", 10.0, None, None, None,
                  None, None)
    await calls.create(row)
    assert (await calls.active_for_conversation(w.tenant.id, w.conv.id)) == row
    assert await calls.get(other.tenant.id, row.id) is None
    assert await calls.answer(w.tenant.id, row.id, "b" * 32, 11.0)
    assert not await calls.answer(w.tenant.id, row.id, "c" * 32, 11.5)  # second accept loses
    assert await calls.end(w.tenant.id, row.id, reason="agent_hangup", now=20.0, duration=9.0)
    assert not await calls.end(w.tenant.id, row.id, reason="x", now=21.0, duration=0.0)
    got = await calls.get(w.tenant.id, row.id)
    assert got and got.state == "ended" and got.end_reason == "agent_hangup" and got.duration == 9.0
    assert await calls.recording_enabled(w.tenant.id, True)
    await calls.set_recording_enabled(w.tenant.id, False)
    await calls.set_recording_enabled(w.tenant.id, False)
    assert not await calls.recording_enabled(w.tenant.id, True)

    keys = KeyRing(db, Sealer(secrets.token_bytes(32)), lambda: 30.0)
    k1 = await keys.current(w.tenant.id)
    assert (await keys.current(w.tenant.id)) == k1
    assert str((await keys.identity(w.tenant.id, k1.key_id)).to_public()) == k1.recipient
    with pytest.raises(KeyShredded):
        await keys.identity(other.tenant.id, k1.key_id)
    cat = Catalogue(db)
    rec = RecordingRow("d" * 32, w.tenant.id, row.id, k1.key_id, f"{w.tenant.id}/x.age", "recording", 0, 0.0,
                       None, 31.0)
    await cat.insert(rec)
    await cat.finish(w.tenant.id, rec.id, state="complete", size=10, duration=1.5, sha256="ab")
    assert (await cat.get(w.tenant.id, rec.id)).state == "complete"  # type: ignore[union-attr]
    assert await cat.get(other.tenant.id, rec.id) is None
    assert await keys.shred(w.tenant.id) == 1
    with pytest.raises(KeyShredded):
        await keys.identity(w.tenant.id, k1.key_id)
    assert (await keys.current(w.tenant.id)).key_id != k1.key_id


async def test_the_unfinished_calls_of_a_silent_node_are_ended_by_the_others(store) -> None:
    w = await new_world(store)
    calls = CallStore(store)
    ids = iter(f"{i:032x}" for i in range(1, 100))

    async def call(node: str, started: float, *, answered: float | None = None) -> CallRow:
        row = CallRow(next(ids), w.tenant.id, w.conv.id, w.contact.id, "b" * 32 if answered else None, node,
                      "answered" if answered else "ringing", started, answered, None, None, None, None)
        await calls.create(row)
        return row

    await calls.heartbeat("dead", 100.0)
    await calls.heartbeat("alive", 100.0)
    await calls.heartbeat("alive", 200.0)  # an upsert
    await calls.heartbeat("me", 200.0)
    dead_answered = await call("dead", 90.0, answered=95.0)
    dead_ringing = await call("dead", 99.0)
    alive = await call("alive", 90.0)
    mine = await call("me", 90.0)
    legacy_old = await call("legacy", 90.0)  # a node that never wrote a heartbeat (an older version)
    legacy_new = await call("legacy", 160.0)  # …whose recent call may still be live
    done = await call("dead", 80.0)
    assert await calls.end(w.tenant.id, done.id, reason="visitor_hangup", now=85.0, duration=0.0)
    key = await KeyRing(store, Sealer(secrets.token_bytes(32)), lambda: 30.0).current(w.tenant.id)
    cat = Catalogue(store)
    rec = RecordingRow("d" * 32, w.tenant.id, dead_answered.id, key.key_id, "k", "recording", 0, 0.0, None, 95.0)
    await cat.insert(rec)

    ended = await calls.end_orphaned("me", now=210.0, stale_before=150.0)
    assert {c.id for c in ended} == {dead_answered.id, dead_ringing.id, legacy_old.id}
    for c in ended:
        got = await calls.get(w.tenant.id, c.id)
        assert got and got.state == "ended" and got.end_reason == "node_lost" and got.ended_at == 210.0
    assert (await calls.get(w.tenant.id, dead_answered.id)).duration == 115.0  # type: ignore[union-attr]
    assert (await calls.get(w.tenant.id, dead_ringing.id)).duration == 0.0  # type: ignore[union-attr]
    for c in (alive, mine, legacy_new):
        assert (await calls.get(w.tenant.id, c.id)).state != "ended"  # type: ignore[union-attr]
    assert (await calls.get(w.tenant.id, done.id)).end_reason == "visitor_hangup"  # type: ignore[union-attr]
    assert (await cat.get(w.tenant.id, rec.id)).state == "truncated"  # type: ignore[union-attr]
    async with store.reader() as c:
        left = {r["node_id"] for r in await c.fetch("SELECT node_id FROM node_heartbeats")}
    assert left == {"alive", "me"}  # the gone node's row went with its calls
    assert await calls.end_orphaned("me", now=220.0, stale_before=150.0) == []  # nothing twice

    # a node started again under its own id (a restarted worker) ends what it had left
    restarted = await calls.end_unfinished_of("me", now=230.0)
    assert [c.id for c in restarted] == [mine.id] and restarted[0].end_reason == "gateway_restart"
    await calls.forget_node("me")
    async with store.reader() as c:
        assert {r["node_id"] for r in await c.fetch("SELECT node_id FROM node_heartbeats")} == {"alive"}
