"""The widget's repositories — `UploadRepository` and `WidgetSettingsRepository`
(gateway/widget/store.py) — run on SQLite and PostgreSQL (the `backend` / `store` fixtures
of the core store's contract suite)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.store.sql import Conflict
from gateway.widget.store import Upload, UploadRepository, WidgetSettingsRepository, WidgetStore
from tests.contract.test_store_contract import backend, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def uploads_on(db: StoreDatabase) -> UploadRepository:
    return WidgetStore(db)


def settings_on(db: StoreDatabase) -> WidgetSettingsRepository:
    return WidgetStore(db)


def upload(tenant_id: str, upload_id: str, *, conversation_id: str | None = None, name: str = "photo.png") -> Upload:
    return Upload(upload_id, tenant_id, "contact", "u" * 32, conversation_id, name, "image/png", 1234,
                  f"{tenant_id}/{upload_id}", 50.5)


# --- uploads -----------------------------------------------------------------------


async def test_an_upload_round_trips_unbound(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = uploads_on(store)
    u = upload(w.tenant.id, "a" * 32, name="Ảnh chụp 📷.png")
    await repo.add_upload(u)
    assert await repo.get_upload(w.tenant.id, u.id) == u
    bound_on_add = upload(w.tenant.id, "b" * 32, conversation_id=w.conv.id)
    await repo.add_upload(bound_on_add)
    got = await repo.get_upload(w.tenant.id, bound_on_add.id)
    assert got is not None and got.conversation_id is None  # only `bind_uploads` binds


async def test_uploads_are_scoped_to_the_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = uploads_on(store)
    u = upload(w.tenant.id, "a" * 32)
    await repo.add_upload(u)
    assert await repo.get_upload(other.tenant.id, u.id) is None
    await repo.bind_uploads(other.tenant.id, [u.id], other.conv.id)
    assert await repo.get_upload(w.tenant.id, u.id) == u  # still unbound


async def test_an_unknown_upload_is_not_found(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = uploads_on(store)
    assert await repo.get_upload(w.tenant.id, "f" * 32) is None
    await repo.bind_uploads(w.tenant.id, ["f" * 32], w.conv.id)  # ignored
    assert await repo.get_upload(w.tenant.id, "f" * 32) is None


async def test_an_upload_id_is_taken_once(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = uploads_on(store)
    u = upload(w.tenant.id, "a" * 32)
    await repo.add_upload(u)
    with pytest.raises(Conflict):
        await repo.add_upload(upload(w.tenant.id, u.id, name="other.png"))
    with pytest.raises(Conflict):
        await repo.add_upload(upload(other.tenant.id, u.id))
    assert await repo.get_upload(w.tenant.id, u.id) == u


async def test_the_first_binding_wins(store: StoreDatabase) -> None:
    w = await new_world(store)
    second = await store.create_conversation(tenant_id=w.tenant.id, channel=w.conv.channel,
                                             contact_id=w.contact.id, now=101.0)
    repo = uploads_on(store)
    a, b, c = (upload(w.tenant.id, x * 32) for x in "abc")
    for u in (a, b, c):
        await repo.add_upload(u)
    await repo.bind_uploads(w.tenant.id, [a.id, b.id], w.conv.id)
    await repo.bind_uploads(w.tenant.id, [a.id, b.id, c.id], second.id)  # a and b are already bound
    await repo.bind_uploads(w.tenant.id, [a.id], w.conv.id)  # binding again changes nothing
    bound = {u.id: (await repo.get_upload(w.tenant.id, u.id)) for u in (a, b, c)}
    assert {k: v.conversation_id for k, v in bound.items() if v} == {a.id: w.conv.id, b.id: w.conv.id,
                                                                    c.id: second.id}
    assert bound[a.id] == replace(a, conversation_id=w.conv.id)  # nothing else changed


# --- settings ----------------------------------------------------------------------


async def test_settings_are_none_until_put_then_the_last_put_wins(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = settings_on(store)
    assert await repo.get_settings(w.tenant.id) is None
    first = {"color": "#ff0000", "greeting": "Xin chào 👋", "position": {"side": "right", "offset": 12}}
    await repo.put_settings(w.tenant.id, first, now=1.0)
    assert await repo.get_settings(w.tenant.id) == first
    assert await repo.get_settings(other.tenant.id) is None  # scoped to the tenant
    await repo.put_settings(w.tenant.id, {"color": "#00ff00"}, now=2.0)
    assert await repo.get_settings(w.tenant.id) == {"color": "#00ff00"}  # replaced, not merged
    await repo.put_settings(other.tenant.id, {"color": "#0000ff"}, now=3.0)
    assert await repo.get_settings(w.tenant.id) == {"color": "#00ff00"}


async def test_unbound_uploads_are_listed_oldest_first_and_deleted(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = uploads_on(store)
    old = replace(upload(w.tenant.id, "a" * 32), created_at=10.0)
    older_other = replace(upload(other.tenant.id, "b" * 32), created_at=5.0)
    bound = replace(upload(w.tenant.id, "c" * 32), created_at=1.0)
    young = replace(upload(w.tenant.id, "d" * 32), created_at=100.0)
    for u in (old, older_other, bound, young):
        await repo.add_upload(u)
    await repo.bind_uploads(w.tenant.id, [bound.id], w.conv.id)
    assert [u.id for u in await repo.unbound_uploads(50.0)] == [older_other.id, old.id]
    assert [u.id for u in await repo.unbound_uploads(50.0, limit=1)] == [older_other.id]
    await repo.delete_upload(other.tenant.id, old.id)  # another tenant's: left alone
    assert await repo.get_upload(w.tenant.id, old.id) == old
    await repo.delete_upload(w.tenant.id, old.id)
    await repo.delete_upload(w.tenant.id, old.id)  # again: nothing happens
    assert await repo.get_upload(w.tenant.id, old.id) is None
    assert [u.id for u in await repo.unbound_uploads(1000.0)] == [older_other.id, young.id]
