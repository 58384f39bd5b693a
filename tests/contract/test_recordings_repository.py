"""The recordings' repositories — `RecordingCatalogue` (recording/catalogue.py) and
`RecordingKeys` (recording/keys.py) — run on SQLite and PostgreSQL (the `backend` /
`store` fixtures of the core store's contract suite)."""

from __future__ import annotations

import asyncio
import secrets
from typing import cast

import pytest

from gateway.store.db import Database
from gateway.store.sql import Conflict
from recording.catalogue import Catalogue, RecordingCatalogue, RecordingRow
from recording.keys import KeyRing, KeyShredded, RecordingKeys
from recording.masterkey import MasterKeyError, Sealer
from tests.contract.test_store_contract import Backend, backend, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def keys_on(db: Database, sealer: Sealer | None, now: float = 30.0) -> RecordingKeys:
    return KeyRing(db, sealer, lambda: now)


def catalogue_on(db: Database) -> RecordingCatalogue:
    return Catalogue(db)


def recording(tenant_id: str, rec_id: str, key_id: str, *, call_id: str = "c" * 32) -> RecordingRow:
    return RecordingRow(rec_id, tenant_id, call_id, key_id, f"{tenant_id}/{rec_id}.age", "recording", 0, 0.0, None,
                        31.0)


# --- catalogue ---------------------------------------------------------------------


async def test_a_recording_round_trips_and_finishes(store: StoreDatabase) -> None:
    w = await new_world(store)
    key = await keys_on(store, Sealer(secrets.token_bytes(32))).current(w.tenant.id)
    cat = catalogue_on(store)
    rec = recording(w.tenant.id, "d" * 32, key.key_id)
    await cat.insert(rec)
    assert await cat.get(w.tenant.id, rec.id) == rec
    await cat.finish(w.tenant.id, rec.id, state="complete", size=10, duration=1.5, sha256="ab")
    done = await cat.get(w.tenant.id, rec.id)
    assert done is not None
    assert (done.state, done.size, done.duration, done.sha256) == ("complete", 10, 1.5, "ab")
    assert (done.call_id, done.key_id, done.blob_key, done.created_at) == (rec.call_id, rec.key_id, rec.blob_key,
                                                                           rec.created_at)
    await cat.finish(w.tenant.id, rec.id, state="failed", size=0, duration=0.0, sha256=None)
    failed = await cat.get(w.tenant.id, rec.id)
    assert failed is not None and (failed.state, failed.sha256) == ("failed", None)


async def test_the_catalogue_is_scoped_to_the_tenant_but_for_the_admin_lookup(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    key = await keys_on(store, Sealer(secrets.token_bytes(32))).current(w.tenant.id)
    cat = catalogue_on(store)
    rec = recording(w.tenant.id, "d" * 32, key.key_id)
    await cat.insert(rec)
    assert await cat.get(other.tenant.id, rec.id) is None
    await cat.finish(other.tenant.id, rec.id, state="complete", size=99, duration=9.0, sha256="ff")
    assert await cat.get(w.tenant.id, rec.id) == rec  # another tenant's finish changed nothing
    assert await cat.get_any_tenant(rec.id) == rec


async def test_unknown_recordings_are_not_found(store: StoreDatabase) -> None:
    w = await new_world(store)
    cat = catalogue_on(store)
    assert await cat.get(w.tenant.id, "f" * 32) is None
    assert await cat.get_any_tenant("f" * 32) is None
    await cat.finish(w.tenant.id, "f" * 32, state="complete", size=1, duration=1.0, sha256=None)  # no error
    assert await cat.get_any_tenant("f" * 32) is None


async def test_a_recording_id_is_taken_once(store: StoreDatabase) -> None:
    w = await new_world(store)
    key = await keys_on(store, Sealer(secrets.token_bytes(32))).current(w.tenant.id)
    cat = catalogue_on(store)
    rec = recording(w.tenant.id, "d" * 32, key.key_id)
    await cat.insert(rec)
    with pytest.raises(Conflict):
        await cat.insert(recording(w.tenant.id, rec.id, key.key_id, call_id="e" * 32))
    assert await cat.get(w.tenant.id, rec.id) == rec


# --- keys --------------------------------------------------------------------------


async def test_the_current_key_is_generated_once_and_opens(store: StoreDatabase) -> None:
    w = await new_world(store)
    keys = keys_on(store, Sealer(secrets.token_bytes(32)))
    k1 = await keys.current(w.tenant.id)
    assert k1.tenant_id == w.tenant.id and k1.recipient.startswith("age1")
    assert await keys.current(w.tenant.id) == k1
    assert str((await keys.identity(w.tenant.id, k1.key_id)).to_public()) == k1.recipient
    assert await keys.identities_text(w.tenant.id) == [(k1.key_id, str(await keys.identity(w.tenant.id, k1.key_id)))]


async def test_concurrent_first_uses_agree_on_one_key(backend: Backend, store: StoreDatabase) -> None:
    w = await new_world(store)
    sealer = Sealer(secrets.token_bytes(32))
    # four stores: separate connections (and transactions) on PostgreSQL
    rings = [keys_on(cast(StoreDatabase, await backend.open()), sealer) for _ in range(4)]
    got = await asyncio.gather(*(ring.current(w.tenant.id) for ring in rings for _ in range(3)))
    assert len({k.key_id for k in got}) == 1
    assert len(await keys_on(store, sealer).identities_text(w.tenant.id)) == 1


async def test_keys_are_scoped_to_the_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    keys = keys_on(store, Sealer(secrets.token_bytes(32)))
    mine, theirs = await keys.current(w.tenant.id), await keys.current(other.tenant.id)
    assert mine.key_id != theirs.key_id and mine.recipient != theirs.recipient
    with pytest.raises(KeyShredded):
        await keys.identity(other.tenant.id, mine.key_id)
    with pytest.raises(KeyShredded):
        await keys.identity(w.tenant.id, "f" * 32)  # unknown
    assert await keys.shred(w.tenant.id) == 1
    assert str((await keys.identity(other.tenant.id, theirs.key_id)).to_public()) == theirs.recipient
    assert [k for k, _ in await keys.identities_text(other.tenant.id)] == [theirs.key_id]


async def test_shredding_makes_recordings_unopenable_and_the_next_key_new(store: StoreDatabase) -> None:
    w = await new_world(store)
    sealer = Sealer(secrets.token_bytes(32))
    k1 = await keys_on(store, sealer, now=30.0).current(w.tenant.id)
    keys = keys_on(store, sealer, now=40.0)
    assert await keys.shred(w.tenant.id) == 1
    assert await keys.shred(w.tenant.id) == 0
    with pytest.raises(KeyShredded):
        await keys.identity(w.tenant.id, k1.key_id)
    assert await keys.identities_text(w.tenant.id) == []
    k2 = await keys.current(w.tenant.id)
    assert k2.key_id != k1.key_id and k2.recipient != k1.recipient
    assert await keys.current(w.tenant.id) == k2
    assert [k for k, _ in await keys.identities_text(w.tenant.id)] == [k2.key_id]


async def test_without_a_master_key_only_existing_recipients_are_read(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    k1 = await keys_on(store, Sealer(secrets.token_bytes(32))).current(w.tenant.id)
    keyless = keys_on(store, None)
    assert await keyless.current(w.tenant.id) == k1  # recording needs only the public recipient
    with pytest.raises(MasterKeyError):
        await keyless.identity(w.tenant.id, k1.key_id)
    with pytest.raises(MasterKeyError):
        await keyless.current(other.tenant.id)  # generating one needs the master key
    assert await keyless.identities_text(other.tenant.id) == []


async def test_a_key_sealed_under_another_master_key_does_not_open(store: StoreDatabase) -> None:
    w = await new_world(store)
    k1 = await keys_on(store, Sealer(secrets.token_bytes(32))).current(w.tenant.id)
    with pytest.raises(MasterKeyError):
        await keys_on(store, Sealer(secrets.token_bytes(32))).identity(w.tenant.id, k1.key_id)
