"""The `CallRepository` contract (gateway/calls/store.py), run on SQLite and PostgreSQL
(the `backend` / `store` fixtures of the core store's contract suite)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from gateway.calls.store import CallRepository, CallRow, CallStore
from gateway.store.db import Database
from recording.catalogue import Catalogue, RecordingRow
from recording.keys import KeyRing
from recording.masterkey import Sealer
from tests.contract.test_store_contract import World, backend, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def calls_on(db: Database) -> CallRepository:
    return CallStore(db)


def ids() -> Iterator[str]:
    return (f"{i:032x}" for i in range(1, 1000))


def ringing(w: World, call_id: str, *, node: str = "n1", started: float = 10.0) -> CallRow:
    return CallRow(call_id, w.tenant.id, w.conv.id, w.contact.id, None, node, "ringing", started, None, None, None,
                   None, None)


async def heartbeats(db: Database) -> set[str]:
    async with db.reader() as c:
        return {r["node_id"] for r in await c.fetch("SELECT node_id FROM node_heartbeats")}


async def recording_of(db: StoreDatabase, w: World, call_id: str, rec_id: str) -> Catalogue:
    key = await KeyRing(db, Sealer(secrets.token_bytes(32)), lambda: 30.0).current(w.tenant.id)
    cat = Catalogue(db)
    await cat.insert(RecordingRow(rec_id, w.tenant.id, call_id, key.key_id, "k", "recording", 0, 0.0, None, 31.0))
    return cat


async def test_a_call_round_trips_and_is_scoped_to_its_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    calls = calls_on(store)
    row = ringing(w, "a" * 32)
    await calls.create(row)
    assert await calls.get(w.tenant.id, row.id) == row
    assert await calls.get(other.tenant.id, row.id) is None
    assert await calls.active_for_conversation(other.tenant.id, w.conv.id) is None
    assert await calls.list_for_conversation(other.tenant.id, w.conv.id) == []
    assert not await calls.answer(other.tenant.id, row.id, "b" * 32, 11.0)
    assert not await calls.end(other.tenant.id, row.id, reason="x", now=12.0, duration=0.0)
    await calls.set_recording(other.tenant.id, row.id, "r" * 32)
    assert await calls.get(w.tenant.id, row.id) == row  # nothing another tenant did reached it


async def test_unknown_calls_are_not_found_and_not_changed(store: StoreDatabase) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    assert await calls.get(w.tenant.id, "f" * 32) is None
    assert not await calls.answer(w.tenant.id, "f" * 32, "b" * 32, 11.0)
    assert not await calls.end(w.tenant.id, "f" * 32, reason="x", now=12.0, duration=0.0)
    await calls.set_recording(w.tenant.id, "f" * 32, "r" * 32)
    assert await calls.active_for_conversation(w.tenant.id, w.conv.id) is None
    assert await calls.list_for_conversation(w.tenant.id, w.conv.id) == []


async def test_the_first_answer_and_the_first_end_win(store: StoreDatabase) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    row = ringing(w, "a" * 32)
    await calls.create(row)
    assert await calls.answer(w.tenant.id, row.id, "b" * 32, 11.0)
    assert not await calls.answer(w.tenant.id, row.id, "c" * 32, 11.5)
    got = await calls.get(w.tenant.id, row.id)
    assert got is not None and (got.state, got.agent_id, got.answered_at) == ("answered", "b" * 32, 11.0)
    assert await calls.end(w.tenant.id, row.id, reason="agent_hangup", now=20.0, duration=9.0)
    assert not await calls.end(w.tenant.id, row.id, reason="visitor_hangup", now=21.0, duration=10.0)
    got = await calls.get(w.tenant.id, row.id)
    assert got is not None
    assert (got.state, got.end_reason, got.ended_at, got.duration) == ("ended", "agent_hangup", 20.0, 9.0)
    assert not await calls.answer(w.tenant.id, row.id, "c" * 32, 22.0)  # an ended call is not answered

    missed = ringing(w, "b" * 32, started=30.0)
    await calls.create(missed)
    assert await calls.end(w.tenant.id, missed.id, reason="missed", now=60.0, duration=0.0)
    got = await calls.get(w.tenant.id, missed.id)
    assert got is not None and got.state == "ended" and got.agent_id is None and got.answered_at is None


async def test_conversation_calls_in_start_order_and_the_active_one(store: StoreDatabase) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    late, early, middle = ringing(w, "3" * 32, started=30.0), ringing(w, "1" * 32, started=10.0), \
        ringing(w, "2" * 32, started=20.0)
    for row in (late, early, middle):
        await calls.create(row)
    assert [c.id for c in await calls.list_for_conversation(w.tenant.id, w.conv.id)] == [early.id, middle.id, late.id]
    active = await calls.active_for_conversation(w.tenant.id, w.conv.id)
    assert active is not None and active.id == late.id  # the latest started unfinished call
    assert await calls.end(w.tenant.id, late.id, reason="missed", now=40.0, duration=0.0)
    active = await calls.active_for_conversation(w.tenant.id, w.conv.id)
    assert active is not None and active.id == middle.id
    for row in (early, middle):
        assert await calls.end(w.tenant.id, row.id, reason="missed", now=41.0, duration=0.0)
    assert await calls.active_for_conversation(w.tenant.id, w.conv.id) is None
    assert len(await calls.list_for_conversation(w.tenant.id, w.conv.id)) == 3  # ended calls stay listed


async def test_set_recording_links_the_call(store: StoreDatabase) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    row = ringing(w, "a" * 32)
    await calls.create(row)
    await calls.set_recording(w.tenant.id, row.id, "r" * 32)
    got = await calls.get(w.tenant.id, row.id)
    assert got is not None and got.recording_id == "r" * 32 and got.to_dict()["recording_id"] == "r" * 32


async def test_the_recording_switch_defaults_then_keeps_the_last_value_per_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    calls = calls_on(store)
    assert await calls.recording_enabled(w.tenant.id, True)
    assert not await calls.recording_enabled(w.tenant.id, False)
    await calls.set_recording_enabled(w.tenant.id, False)
    await calls.set_recording_enabled(w.tenant.id, False)  # idempotent
    assert not await calls.recording_enabled(w.tenant.id, True)
    assert await calls.recording_enabled(other.tenant.id, True)  # another tenant's switch is its own
    await calls.set_recording_enabled(w.tenant.id, True)
    assert await calls.recording_enabled(w.tenant.id, False)


async def test_the_unfinished_calls_of_a_silent_node_are_ended_by_the_others(store: StoreDatabase) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    next_id = ids()

    async def call(node: str, started: float, *, answered: float | None = None) -> CallRow:
        row = CallRow(next(next_id), w.tenant.id, w.conv.id, w.contact.id, "b" * 32 if answered else None, node,
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
    cat = await recording_of(store, w, dead_answered.id, "d" * 32)

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
    assert (await cat.get(w.tenant.id, "d" * 32)).state == "truncated"  # type: ignore[union-attr]
    assert await heartbeats(store) == {"alive", "me"}  # the gone node's row went with its calls
    assert await calls.end_orphaned("me", now=220.0, stale_before=150.0) == []  # nothing twice

    # a node started again under its own id (a restarted worker) ends what it had left
    restarted = await calls.end_unfinished_of("me", now=230.0)
    assert [c.id for c in restarted] == [mine.id] and restarted[0].end_reason == "gateway_restart"
    assert await calls.end_unfinished_of("me", now=231.0) == []
    await calls.forget_node("me")
    assert await heartbeats(store) == {"alive"}
    await calls.forget_node("never-seen")  # no error


async def test_a_single_node_restart_ends_every_unfinished_call(store: StoreDatabase) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    a, b, c = ringing(w, "a" * 32, node="x"), ringing(w, "b" * 32, node="y"), ringing(w, "c" * 32)
    for row in (a, b, c):
        await calls.create(row)
    assert await calls.end(w.tenant.id, c.id, reason="missed", now=20.0, duration=0.0)
    cat = await recording_of(store, w, a.id, "d" * 32)
    assert await calls.end_all_unfinished(50.0) == 2
    for row in (a, b):
        got = await calls.get(w.tenant.id, row.id)
        assert got is not None and (got.state, got.end_reason, got.ended_at) == ("ended", "gateway_restart", 50.0)
    assert (await calls.get(w.tenant.id, c.id)).end_reason == "missed"  # type: ignore[union-attr]
    assert (await cat.get(w.tenant.id, "d" * 32)).state == "truncated"  # type: ignore[union-attr]
    assert await calls.end_all_unfinished(60.0) == 0


@pytest.mark.parametrize("reason", ["agent_hangup", "node_lost"])
async def test_an_ended_call_is_not_swept_again(store: StoreDatabase, reason: str) -> None:
    w = await new_world(store)
    calls = calls_on(store)
    row = ringing(w, "a" * 32, node="gone", started=10.0)
    await calls.create(row)
    assert await calls.end(w.tenant.id, row.id, reason=reason, now=20.0, duration=0.0)
    assert await calls.end_orphaned("me", now=300.0, stale_before=200.0) == []
    assert await calls.end_unfinished_of("gone", now=300.0) == []
    got = await calls.get(w.tenant.id, row.id)
    assert got is not None and got.end_reason == reason and got.ended_at == 20.0
