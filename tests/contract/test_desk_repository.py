"""The desk's repositories — `CannedResponseRepository` and `LabelRepository`
(gateway/desk/store.py) — run on SQLite and PostgreSQL (the `backend` / `store` fixtures
of the core store's contract suite)."""

from __future__ import annotations

import pytest

from gateway.desk.store import (
    CannedResponse,
    CannedResponseRepository,
    ContactIdentities,
    DeskStore,
    Identity,
    LabelRepository,
)
from gateway.store.sql import Conflict
from tests.contract.test_store_contract import backend, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def canned_on(db: StoreDatabase) -> CannedResponseRepository:
    return DeskStore(db)


def labels_on(db: StoreDatabase) -> LabelRepository:
    return DeskStore(db)


def identities_on(db: StoreDatabase) -> ContactIdentities:
    return DeskStore(db)


def canned(tenant_id: str, cid: str, shortcut: str, text: str = "Xin chào, em có thể giúp gì ạ?") -> CannedResponse:
    return CannedResponse(cid, tenant_id, shortcut, text, 10.0, 10.0)


# --- canned responses ----------------------------------------------------------------


async def test_canned_responses_round_trip_by_shortcut(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = canned_on(store)
    b, a = canned(w.tenant.id, "b" * 32, "thanks", "Cảm ơn 🙏"), canned(w.tenant.id, "a" * 32, "hello")
    await repo.add_canned(b)
    await repo.add_canned(a)
    assert await repo.list_canned(w.tenant.id) == [a, b]
    assert await repo.get_canned(w.tenant.id, b.id) == b
    assert await repo.get_canned(w.tenant.id, "f" * 32) is None


async def test_a_shortcut_is_taken_once_per_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = canned_on(store)
    await repo.add_canned(canned(w.tenant.id, "a" * 32, "hello"))
    with pytest.raises(Conflict):
        await repo.add_canned(canned(w.tenant.id, "b" * 32, "hello"))
    await repo.add_canned(canned(other.tenant.id, "c" * 32, "hello"))  # another tenant's is free
    await repo.add_canned(canned(w.tenant.id, "d" * 32, "bye"))
    with pytest.raises(Conflict):
        await repo.update_canned(w.tenant.id, "d" * 32, shortcut="hello", text=None, now=11.0)
    assert [c.shortcut for c in await repo.list_canned(w.tenant.id)] == ["bye", "hello"]


async def test_update_changes_the_given_fields_only(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = canned_on(store)
    c = canned(w.tenant.id, "a" * 32, "hello")
    await repo.add_canned(c)
    got = await repo.update_canned(w.tenant.id, c.id, shortcut=None, text="Chào bạn", now=20.0)
    assert got == CannedResponse(c.id, c.tenant_id, "hello", "Chào bạn", 10.0, 20.0)
    got = await repo.update_canned(w.tenant.id, c.id, shortcut="hi", text=None, now=21.0)
    assert got is not None and (got.shortcut, got.text, got.updated_at) == ("hi", "Chào bạn", 21.0)
    assert await repo.get_canned(w.tenant.id, c.id) == got


async def test_canned_responses_are_scoped_to_the_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = canned_on(store)
    c = canned(w.tenant.id, "a" * 32, "hello")
    await repo.add_canned(c)
    assert await repo.list_canned(other.tenant.id) == []
    assert await repo.get_canned(other.tenant.id, c.id) is None
    assert await repo.update_canned(other.tenant.id, c.id, shortcut="x", text="x", now=30.0) is None
    assert await repo.delete_canned(other.tenant.id, c.id) is False
    assert await repo.get_canned(w.tenant.id, c.id) == c
    assert await repo.delete_canned(w.tenant.id, c.id) is True
    assert await repo.delete_canned(w.tenant.id, c.id) is False
    assert await repo.list_canned(w.tenant.id) == []


# --- labels --------------------------------------------------------------------------


async def test_labels_are_added_once_and_removed(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = labels_on(store)
    assert await repo.add_label(w.tenant.id, w.conv.id, "VIP", now=1.0)
    assert await repo.add_label(w.tenant.id, w.conv.id, "hoàn tiền", now=2.0)
    assert await repo.add_label(w.tenant.id, w.conv.id, "VIP", now=3.0)  # again: no change
    assert await repo.labels_of(w.tenant.id, [w.conv.id]) == {w.conv.id: ["VIP", "hoàn tiền"]}
    await repo.remove_label(w.tenant.id, w.conv.id, "VIP")
    await repo.remove_label(w.tenant.id, w.conv.id, "absent")
    assert await repo.labels_of(w.tenant.id, [w.conv.id, "f" * 32]) == {w.conv.id: ["hoàn tiền"], "f" * 32: []}


async def test_labels_are_scoped_to_the_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = labels_on(store)
    assert await repo.add_label(other.tenant.id, w.conv.id, "spam", now=1.0) is False
    assert await repo.add_label(w.tenant.id, "f" * 32, "spam", now=1.0) is False
    await repo.add_label(w.tenant.id, w.conv.id, "VIP", now=1.0)
    await repo.add_label(other.tenant.id, other.conv.id, "other", now=1.0)
    await repo.remove_label(other.tenant.id, w.conv.id, "VIP")
    assert await repo.labels_of(w.tenant.id, [w.conv.id]) == {w.conv.id: ["VIP"]}
    assert await repo.labels_of(other.tenant.id, [w.conv.id]) == {w.conv.id: []}
    assert await repo.tenant_labels(w.tenant.id) == ["VIP"]
    assert await repo.labelled(other.tenant.id, "VIP", limit=10) == []


async def test_labelled_conversations_newest_first_and_the_tenants_labels(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = labels_on(store)
    convs = [w.conv]
    for k in range(3):
        convs.append(await store.create_conversation(tenant_id=w.tenant.id, channel=w.conv.channel,
                                                     contact_id=w.contact.id, now=200.0 + k))
    for c in convs[1:]:
        await repo.add_label(w.tenant.id, c.id, "VIP", now=1.0)
    await repo.add_label(w.tenant.id, convs[0].id, "bảo hành", now=1.0)
    await repo.add_label(w.tenant.id, convs[1].id, "bảo hành", now=1.0)
    assert await repo.labelled(w.tenant.id, "VIP", limit=10) == [convs[3].id, convs[2].id, convs[1].id]
    assert await repo.labelled(w.tenant.id, "VIP", limit=2) == [convs[3].id, convs[2].id]
    assert await repo.labelled(w.tenant.id, "vip", limit=10) == []
    assert await repo.tenant_labels(w.tenant.id) == ["VIP", "bảo hành"]


# --- contact identities --------------------------------------------------------------


async def test_a_contacts_identities_by_kind_scoped_to_the_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    ids = identities_on(store)
    zalo = await store.get_or_create_contact_by_identity(w.tenant.id, "zalo", "z-42", name="Lan", email=None,
                                                         now=1.0)
    assert await ids.identities_of(w.tenant.id, zalo.id) == [Identity("zalo", "z-42")]
    again = await store.get_or_create_contact_by_identity(w.tenant.id, "email", "lan@example.vn", name="Lan",
                                                          email="lan@example.vn", now=2.0)
    assert await ids.identities_of(w.tenant.id, again.id) == [Identity("email", "lan@example.vn")]
    assert await ids.identities_of(other.tenant.id, zalo.id) == []
    assert await ids.identities_of(w.tenant.id, "f" * 32) == []
    assert await ids.identities_of(w.tenant.id, w.contact.id) == []  # created without any
