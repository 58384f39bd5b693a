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
