"""The `PrivacyRepository` contract (gateway/privacy/store.py), run on SQLite and
PostgreSQL (the `backend` / `store` fixtures of the core store's contract suite)."""

from __future__ import annotations

import itertools
import secrets

from gateway.calls.store import CallRow, CallStore
from gateway.core.domain import AuthorType, NewMessage, TenantStatus
from gateway.privacy.store import PURGE_CHUNK, Policy, PrivacyRepository, PrivacyStore
from gateway.widget.store import Upload, WidgetStore
from recording.catalogue import Catalogue, RecordingRow
from recording.keys import KeyRing
from recording.masterkey import Sealer
from tests.contract.test_store_contract import Backend, World, append_n, backend, new_tenant, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def privacy_on(backend: Backend, db: StoreDatabase, *, chunk: int | None = None) -> PrivacyRepository:
    """The repository with a clock that advances one second per reading (audit order)."""
    ticks = itertools.count(1000)
    return PrivacyStore(db, sqlite=backend.kind == "sqlite", clock=lambda: float(next(ticks)),
                        chunk=PURGE_CHUNK if chunk is None else chunk)


async def populate(store: StoreDatabase, w: World, messages: int) -> None:
    """Rows of `w`'s tenant in core and feature tables."""
    await append_n(store, w, messages)
    call = CallRow(secrets.token_hex(16), w.tenant.id, w.conv.id, w.contact.id, None, "n1", "ringing", 10.0, None,
                   None, None, None, None)
    await CallStore(store).create(call)
    key = await KeyRing(store, Sealer(secrets.token_bytes(32)), lambda: 30.0).current(w.tenant.id)
    await Catalogue(store).insert(RecordingRow(secrets.token_hex(16), w.tenant.id, call.id, key.key_id, "k",
                                               "complete", 1, 1.0, None, 31.0))
    widget = WidgetStore(store)
    await widget.add_upload(Upload(secrets.token_hex(16), w.tenant.id, "contact", w.contact.id, None, "a.png",
                                   "image/png", 1, "p", 1.0))
    await widget.put_settings(w.tenant.id, {"color": "#fff"}, now=1.0)


# --- tenant-owned tables ---------------------------------------------------------------


async def test_tenant_tables_are_discovered_children_first(backend: Backend, store: StoreDatabase) -> None:
    repo = privacy_on(backend, store)
    async with repo.db.reader() as conn:
        tables = await repo.tenant_tables(conn)
        with_contact = await repo.tenant_tables(conn, with_column="contact_id")
    assert "tenants" not in tables and "privacy_audit" not in tables  # the audit outlives the tenant
    for feature_table in ("calls", "recordings", "recording_keys", "uploads", "widget_settings", "privacy_policies"):
        assert feature_table in tables
    for child, parent in (("messages", "conversations"), ("conversations", "contacts"),
                          ("recordings", "recording_keys"), ("calls", "conversations")):
        assert tables.index(child) < tables.index(parent), (child, parent)
    assert set(with_contact) < set(tables)
    assert "calls" in with_contact and "conversations" in with_contact
    assert "recordings" not in with_contact and "uploads" not in with_contact
    assert with_contact == [t for t in tables if t in with_contact]  # the same order


async def test_a_tenant_purge_deletes_its_rows_only(backend: Backend, store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    await populate(store, w, messages=7)
    await populate(store, other, messages=2)
    repo = privacy_on(backend, store, chunk=2)  # several chunks per table
    await repo.set_policy(w.tenant.id, Policy(30, "delete"))
    await repo.audit(w.tenant.id, "cli", "tenant.ended", w.tenant.id, {})
    before_other = await repo.count_tenant_rows(other.tenant.id)
    counts = await repo.count_tenant_rows(w.tenant.id)
    assert {t: counts[t] for t in ("tenants", "messages", "conversations", "contacts", "calls", "recordings",
                                   "recording_keys", "uploads", "widget_settings", "privacy_policies")} == {
        "tenants": 1, "messages": 7, "conversations": 1, "contacts": 1, "calls": 1, "recordings": 1,
        "recording_keys": 1, "uploads": 1, "widget_settings": 1, "privacy_policies": 1}

    deleted = await repo.delete_tenant_rows(w.tenant.id)
    assert {t: n for t, n in deleted.items() if n} == {t: n for t, n in counts.items() if n}
    assert set((await repo.count_tenant_rows(w.tenant.id)).values()) == {0}
    assert await repo.count_tenant_rows(other.tenant.id) == before_other
    assert await store.get_messages(other.tenant.id, other.conv.id) != []
    assert [e.action for e in await repo.audit_log(w.tenant.id)] == ["tenant.ended"]  # the audit stays
    assert await repo.delete_tenant_rows(w.tenant.id) == {**{t: 0 for t in counts if t != "tenants"},
                                                          "tenants": 1}  # idempotent: nothing left


async def test_an_unknown_tenant_has_no_rows(backend: Backend, store: StoreDatabase) -> None:
    await new_world(store)
    counts = await privacy_on(backend, store).count_tenant_rows("f" * 32)
    assert counts["tenants"] == 0 and set(counts.values()) == {0}


# --- tenants' ends ---------------------------------------------------------------------


async def test_ended_tenants_earliest_first_up_to_the_bound(backend: Backend, store: StoreDatabase) -> None:
    repo = privacy_on(backend, store)
    late, early, middle, live = [await new_tenant(store, n) for n in ("late", "early", "middle", "live")]
    for t, at in ((late, 300.0), (early, 100.0), (middle, 200.0)):
        assert await repo.end_tenant(t.id, at)
    assert await repo.ended_tenants(250.0) == [(early.id, 100.0), (middle.id, 200.0)]
    assert await repo.ended_tenants(200.0) == [(early.id, 100.0), (middle.id, 200.0)]  # inclusive
    assert await repo.ended_tenants(50.0) == []
    assert (await store.get_tenant(late.id)).status == TenantStatus.ENDED
    assert (await store.get_tenant(live.id)).status == TenantStatus.ACTIVE
    assert await repo.end_tenant(late.id, 150.0)  # a correction moves the end
    assert [t for t, _ in await repo.ended_tenants(250.0)] == [early.id, late.id, middle.id]
    assert not await repo.end_tenant("f" * 32, 100.0)


# --- policies ----------------------------------------------------------------------------


async def test_policies_default_then_the_last_set_wins(backend: Backend, store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = privacy_on(backend, store)
    assert await repo.policy(w.tenant.id) == Policy(None, "anonymise")
    assert await repo.policies_with_retention() == []
    await repo.set_policy(w.tenant.id, Policy(30, "delete"))
    assert await repo.policy(w.tenant.id) == Policy(30, "delete")
    assert await repo.policy(other.tenant.id) == Policy()  # scoped to the tenant
    await repo.set_policy(other.tenant.id, Policy(None, "delete"))  # no retention
    assert await repo.policies_with_retention() == [(w.tenant.id, 30)]
    await repo.set_policy(w.tenant.id, Policy(7, "anonymise"))
    assert await repo.policy(w.tenant.id) == Policy(7, "anonymise")
    assert await repo.policies_with_retention() == [(w.tenant.id, 7)]


async def test_expiry_blanks_old_messages_once_and_only_the_tenants(backend: Backend, store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    await append_n(store, w, 5)  # created at 200 … 204
    await store.append_message(w.tenant.id, w.conv.id, NewMessage(
        AuthorType.CONTACT, None, "", attachments=({"id": "u1", "name": "a.png"},)), now=199.0)
    await append_n(store, other, 5)
    repo = privacy_on(backend, store, chunk=2)
    assert await repo.expire_messages(w.tenant.id, 202.5, dry_run=True) == 4
    assert all(m.text or m.attachments for m in await store.get_messages(w.tenant.id, w.conv.id))
    assert await repo.expire_messages(w.tenant.id, 202.5, dry_run=False) == 4
    got = await store.get_messages(w.tenant.id, w.conv.id)
    assert [(m.seq, m.text, m.attachments) for m in got] == [
        (1, "", ()), (2, "", ()), (3, "", ()), (4, "m4", ()), (5, "m5", ()), (6, "", ())]  # rows stay
    assert await repo.expire_messages(w.tenant.id, 202.5, dry_run=False) == 0
    assert await repo.expire_messages(w.tenant.id, 202.5, dry_run=True) == 0
    assert [m.text for m in await store.get_messages(other.tenant.id, other.conv.id)] == [f"m{i}" for i in
                                                                                          range(1, 6)]


# --- audit -------------------------------------------------------------------------------


async def test_the_audit_log_is_newest_first_limited_and_per_tenant(backend: Backend, store: StoreDatabase) -> None:
    repo = privacy_on(backend, store)
    for i in range(5):
        await repo.audit("t1", "cli", f"action.{i}", f"subject-{i}", {"n": i, "ü": ["x"]})
    await repo.audit("t2", "agent:a", "contact.erased", "c1", {})
    log = await repo.audit_log("t1")
    assert [e.action for e in log] == [f"action.{i}" for i in (4, 3, 2, 1, 0)]
    assert [e.created_at for e in log] == sorted((e.created_at for e in log), reverse=True)
    assert (log[0].tenant_ref, log[0].actor, log[0].subject, log[0].details) == ("t1", "cli", "subject-4",
                                                                                 {"n": 4, "ü": ["x"]})
    assert len({e.id for e in log}) == 5
    assert [e.action for e in await repo.audit_log("t1", limit=2)] == ["action.4", "action.3"]
    assert [e.action for e in await repo.audit_log("t2")] == ["contact.erased"]
    assert await repo.audit_log("nobody") == []
