"""The `Store` contract, run against every backend.

`backend` is a fresh, empty database (a temp SQLite file, or a random PostgreSQL schema
dropped afterwards) that can open any number of stores on it; `store` is one opened and
migrated store on it. PostgreSQL must be reachable (IZIHELP_TEST_PG_DSN overrides the
default DSN): a connection error fails the postgres tests, it never skips them.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.core.domain import (
    Agent,
    AgentRole,
    AgentStatus,
    AuthorType,
    Channel,
    Contact,
    Conversation,
    ConversationFilter,
    ConversationStatus,
    DeliveryState,
    NewMessage,
    Tenant,
    TenantStatus,
)
from gateway.store.base import AppendRequest, NotFound, Store, StoreError
from gateway.store.factory import make_store, open_store
from gateway.store.migrations import for_dialect, load_migrations, split_statements
from gateway.store.postgres import _APPEND, APPEND_POOL_SETTINGS, PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.support.procs import drop_schema as drop_pg_schema
from tests.support.waits import until

# --- backends ----------------------------------------------------------------

PG_DSN = os.environ.get("IZIHELP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def random_schema() -> str:
    return f"contract_{uuid.uuid4().hex[:12]}"


async def drop_schema(schema: str) -> None:
    await drop_pg_schema(schema, PG_DSN)


@dataclass
class Backend:
    kind: str
    database_url: str
    schema: str | None
    opened: list[SqliteStore | PostgresStore] = field(default_factory=list)

    def make(self) -> SqliteStore | PostgresStore:
        """An unopened store on this backend's database (closed at teardown once opened)."""
        store = make_store(self.database_url, sqlite_path="unused", schema=self.schema)
        self.opened.append(store)
        return store

    async def open(self) -> Store:
        """Another opened and migrated store on this backend's database."""
        store = await open_store(self.database_url, sqlite_path="unused", schema=self.schema)
        assert isinstance(store, SqliteStore | PostgresStore)
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()


# "sqlite": the store production opens for a sqlite:/// URL (`make_store`)
@pytest.fixture(params=[pytest.param("sqlite"),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind == "sqlite":
        b = Backend(kind, f"sqlite:///{tmp_path / 'store.sqlite3'}", None)
    else:
        b = Backend(kind, PG_DSN, random_schema())
    try:
        yield b
    finally:
        await b.close_all()
        if b.schema is not None and b.opened:  # nothing to drop if PostgreSQL was never reached
            await drop_schema(b.schema)


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()


# --- builders ----------------------------------------------------------------


@dataclass(frozen=True)
class World:
    tenant: Tenant
    contact: Contact
    conv: Conversation


async def new_tenant(store: Store, name: str = "Acme") -> Tenant:
    return await store.create_tenant(
        name=name, widget_key=f"wk_{uuid.uuid4().hex}", identity_secret="s3cret", now=100.0
    )


async def new_agent(
    store: Store,
    tenant_id: str,
    name: str = "Lan",
    *,
    capacity: int = 3,
    now: float = 100.0,
    status: AgentStatus | None = AgentStatus.ONLINE,
) -> Agent:
    agent = await store.create_agent(
        tenant_id=tenant_id,
        name=name,
        role=AgentRole.AGENT,
        token_hash=uuid.uuid4().hex,
        capacity=capacity,
        now=now,
    )
    if status is not None:
        agent = await store.set_agent_status(tenant_id, agent.id, status)
    return agent


async def new_world(store: Store, name: str = "Acme") -> World:
    tenant = await new_tenant(store, name)
    contact = await store.create_contact(tenant_id=tenant.id, name="Visitor", email=None, now=100.0)
    conv = await store.create_conversation(
        tenant_id=tenant.id, channel=Channel.WIDGET, contact_id=contact.id, now=100.0
    )
    return World(tenant, contact, conv)


def msg(text: str = "hi", *, client_id: str | None = None, external_id: str | None = None) -> NewMessage:
    return NewMessage(
        author_type=AuthorType.CONTACT,
        author_id=None,
        text=text,
        client_id=client_id,
        external_id=external_id,
    )


async def append_n(store: Store, w: World, n: int, *, now: float = 200.0) -> None:
    for i in range(n):
        await store.append_message(w.tenant.id, w.conv.id, msg(f"m{i + 1}"), now=now + i)


# --- lifecycle -----------------------------------------------------------------


async def test_migrate_twice_is_idempotent(backend: Backend) -> None:
    store = await backend.open()
    tenant = await new_tenant(store)
    await store.migrate()
    await store.migrate()
    other = await backend.open()  # a second node starting on the migrated database
    assert await other.get_tenant(tenant.id) == tenant


async def test_concurrent_migrations_on_an_empty_database(backend: Backend) -> None:
    stores = [backend.make() for _ in range(3)]
    for s in stores:
        await s.open()
    await asyncio.gather(*(s.migrate() for s in stores))
    tenant = await new_tenant(stores[0])
    for s in stores:
        await s.ping()
        assert await s.get_tenant(tenant.id) == tenant


async def test_migration_7_keeps_messages_and_their_idempotency_keys(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """0007 rebuilds `messages` with partial key indexes: a database written at version 6
    keeps every message, and duplicates by client_id / external_id are still caught."""
    import gateway.store.sql as sql_module

    # today's code writes conversations.subject (0010, independent of 0007): that one too
    older = [m for m in load_migrations() if m.version < 7 or m.version == 10]
    monkeypatch.setattr(sql_module, "load_migrations", lambda: older)
    store = backend.make()
    await store.open()
    await store.migrate()
    w = await new_world(store)
    first = await store.append_message(w.tenant.id, w.conv.id, msg("a", client_id="c1"), now=200.0)
    second = await store.append_message(w.tenant.id, w.conv.id, msg("b", external_id="e1"), now=201.0)
    await store.append_message(w.tenant.id, w.conv.id, msg("c"), now=202.0)
    before = await store.get_messages(w.tenant.id, w.conv.id)
    monkeypatch.undo()
    await store.migrate()
    assert await store.get_messages(w.tenant.id, w.conv.id) == before and len(before) == 3
    again = await store.append_batch([
        AppendRequest(w.tenant.id, w.conv.id, msg("a again", client_id="c1")),
        AppendRequest(w.tenant.id, w.conv.id, msg("b again", external_id="e1")),
        AppendRequest(w.tenant.id, w.conv.id, msg("d", client_id="c2", external_id="e2")),
        AppendRequest(w.tenant.id, w.conv.id, msg("e")),
    ], now=300.0)
    assert [(r.message.id, r.created) for r in again[:2] if r] == [(first.message.id, False),
                                                                     (second.message.id, False)]
    assert [(r.message.seq, r.created) for r in again[2:] if r] == [(4, True), (5, True)]
    other = await backend.open()  # another node starting on the migrated database
    assert [m.text for m in await other.get_messages(w.tenant.id, w.conv.id)] == ["a", "b", "c", "d", "e"]


async def test_ping(store: Store) -> None:
    await store.ping()


# --- settings --------------------------------------------------------------------


async def test_get_or_create_setting_keeps_the_first_value(store: Store) -> None:
    assert await store.get_or_create_setting("secret", "first") == "first"
    assert await store.get_or_create_setting("secret", "second") == "first"
    values = await asyncio.gather(*(store.get_or_create_setting("raced", f"v{i}") for i in range(10)))
    assert len(set(values)) == 1


# --- tenants ---------------------------------------------------------------------


async def test_tenant_crud(store: Store) -> None:
    t = await new_tenant(store, "Cửa hàng Hoa")
    assert t.status == TenantStatus.ACTIVE and t.require_identity is False and t.ended_at is None
    assert await store.get_tenant(t.id) == t
    assert await store.get_tenant_by_widget_key(t.widget_key) == t

    updated = await store.update_tenant(t.id, require_identity=True)
    assert updated.require_identity is True
    ended = await store.update_tenant(t.id, status="ended", ended_at=500.5)
    assert (ended.status, ended.ended_at, ended.require_identity) == (TenantStatus.ENDED, 500.5, True)
    assert await store.update_tenant(t.id) == ended

    t2 = await new_tenant(store, "Second")
    assert {x.id for x in await store.list_tenants()} == {t.id, t2.id}  # same created_at


async def test_tenant_not_found_and_conflicts(store: Store) -> None:
    t = await new_tenant(store)
    with pytest.raises(NotFound):
        await store.get_tenant("missing")
    with pytest.raises(NotFound):
        await store.get_tenant_by_widget_key("missing")
    with pytest.raises(NotFound):
        await store.update_tenant("missing", require_identity=True)
    with pytest.raises(ValueError):
        await store.update_tenant(t.id, status="bogus")
    with pytest.raises(StoreError):
        await store.create_tenant(name="dup", widget_key=t.widget_key, identity_secret="x", now=1.0)
    assert await store.get_tenant(t.id) == t


# --- agents ----------------------------------------------------------------------


async def test_agent_crud(store: Store) -> None:
    t = await new_tenant(store)
    created = await store.create_agent(
        tenant_id=t.id, name="Minh", role=AgentRole.ADMIN, token_hash="hash-1", capacity=5, now=101.0
    )
    assert (created.role, created.status, created.capacity, created.created_at) == (
        AgentRole.ADMIN,
        AgentStatus.OFFLINE,
        5,
        101.0,
    )
    assert await store.get_agent(t.id, created.id) == created
    assert await store.get_agent_by_token_hash("hash-1") == created
    away = await store.set_agent_status(t.id, created.id, AgentStatus.AWAY)
    assert away.status == AgentStatus.AWAY
    second = await new_agent(store, t.id, "Hà", now=102.0)
    assert [a.id for a in await store.list_agents(t.id)] == [created.id, second.id]

    with pytest.raises(NotFound):
        await store.get_agent(t.id, "missing")
    with pytest.raises(NotFound):
        await store.get_agent_by_token_hash("missing")
    with pytest.raises(NotFound):
        await store.set_agent_status(t.id, "missing", AgentStatus.ONLINE)
    with pytest.raises(NotFound):
        await store.create_agent(
            tenant_id="missing", name="x", role=AgentRole.AGENT, token_hash="h2", capacity=1, now=1.0
        )
    with pytest.raises(StoreError):
        await store.create_agent(
            tenant_id=t.id, name="dup", role=AgentRole.AGENT, token_hash="hash-1", capacity=1, now=1.0
        )


# --- contacts --------------------------------------------------------------------


async def test_contact_crud(store: Store) -> None:
    t = await new_tenant(store)
    c = await store.create_contact(tenant_id=t.id, name="An", email="an@example.com", phone="+84", now=100.0)
    assert (c.name, c.email, c.phone, c.attributes) == ("An", "an@example.com", "+84", {})
    assert await store.get_contact(t.id, c.id) == c

    attrs = {"plan": "pro", "tags": ["vip", "hà nội"], "n": 3}
    updated = await store.update_contact(t.id, c.id, {"name": "Ân", "phone": None, "attributes": attrs})
    assert (updated.name, updated.email, updated.phone, updated.attributes) == (
        "Ân",
        "an@example.com",
        None,
        attrs,
    )
    assert await store.get_contact(t.id, c.id) == updated
    assert await store.update_contact(t.id, c.id, {}) == updated
    with pytest.raises(ValueError):
        await store.update_contact(t.id, c.id, {"tenant_id": "evil"})

    others = [await store.create_contact(tenant_id=t.id, name=f"c{i}", email=None, now=101.0 + i) for i in range(4)]
    everyone = [c.id] + [o.id for o in others]
    assert [x.id for x in await store.list_contacts(t.id, limit=10, offset=0)] == everyone
    assert [x.id for x in await store.list_contacts(t.id, limit=2, offset=1)] == everyone[1:3]

    with pytest.raises(NotFound):
        await store.get_contact(t.id, "missing")
    with pytest.raises(NotFound):
        await store.update_contact(t.id, "missing", {"name": "x"})
    with pytest.raises(NotFound):
        await store.create_contact(tenant_id="missing", name=None, email=None, now=1.0)


async def test_contact_identity_get_or_create_is_race_safe(store: Store) -> None:
    t = await new_tenant(store)
    assert await store.find_contact_by_identity(t.id, "email", "a@b.c") is None
    got = await asyncio.gather(
        *(
            store.get_or_create_contact_by_identity(t.id, "email", "a@b.c", name=f"n{i}", email="a@b.c", now=100.0)
            for i in range(20)
        )
    )
    assert len({c.id for c in got}) == 1
    assert await store.find_contact_by_identity(t.id, "email", "a@b.c") == got[0]
    assert len(await store.list_contacts(t.id, limit=100, offset=0)) == 1  # losers left no orphans

    again = await store.get_or_create_contact_by_identity(t.id, "email", "a@b.c", name="x", email=None, now=1.0)
    assert again == got[0]
    other_kind = await store.get_or_create_contact_by_identity(t.id, "phone", "a@b.c", name=None, email=None, now=1.0)
    assert other_kind.id != got[0].id

    t2 = await new_tenant(store, "Other")
    assert await store.find_contact_by_identity(t2.id, "email", "a@b.c") is None
    theirs = await store.get_or_create_contact_by_identity(t2.id, "email", "a@b.c", name=None, email=None, now=1.0)
    assert theirs.id != got[0].id and theirs.tenant_id == t2.id


# --- tenant isolation ------------------------------------------------------------


async def test_cross_tenant_access_is_not_found(store: Store) -> None:
    a = await new_world(store, "A")
    b = await new_world(store, "B")
    agent_a = await new_agent(store, a.tenant.id)
    appended = await store.append_message(a.tenant.id, a.conv.id, msg("secret"), now=150.0)
    bt = b.tenant.id
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "get_conversation": lambda: store.get_conversation(bt, a.conv.id),
        "update_conversation": lambda: store.update_conversation(
            bt, a.conv.id, now=1.0, status=ConversationStatus.RESOLVED
        ),
        "assign foreign agent": lambda: store.update_conversation(bt, b.conv.id, now=1.0, assignee_id=agent_a.id),
        "get_messages": lambda: store.get_messages(bt, a.conv.id),
        "append_message": lambda: store.append_message(bt, a.conv.id, msg("x"), now=1.0),
        "set_delivery_state": lambda: store.set_delivery_state(bt, appended.message.id, DeliveryState.SENT),
        "set_read": lambda: store.set_read(bt, a.conv.id, "agent:x", 1),
        "get_contact": lambda: store.get_contact(bt, a.contact.id),
        "update_contact": lambda: store.update_contact(bt, a.contact.id, {"name": "pwned"}),
        "create_conversation": lambda: store.create_conversation(
            tenant_id=bt, channel=Channel.WIDGET, contact_id=a.contact.id, now=1.0
        ),
        "get_agent": lambda: store.get_agent(bt, agent_a.id),
        "set_agent_status": lambda: store.set_agent_status(bt, agent_a.id, AgentStatus.AWAY),
        "assign_next_agent": lambda: store.assign_next_agent(bt, a.conv.id, now=1.0, fresh_after=0.0),
    }
    for name, attempt in attempts.items():
        with pytest.raises(NotFound):
            await attempt()
            pytest.fail(f"{name} reached another tenant's row")

    assert [c.id for c in await store.list_conversations(bt, ConversationFilter())] == [b.conv.id]
    assert [c.id for c in await store.list_contacts(bt, limit=10, offset=0)] == [b.contact.id]
    assert await store.list_agents(bt) == []
    assert [c.id for c in await store.list_unassigned(bt, 10)] == [b.conv.id]
    await store.set_read(a.tenant.id, a.conv.id, "agent:x", 1)
    assert await store.get_reads(bt, a.conv.id) == {}
    assert await store.get_read_positions(bt, "agent:x", [a.conv.id]) == {a.conv.id: 0}
    # nothing of A changed
    assert await store.get_conversation(a.tenant.id, a.conv.id) == appended.conversation
    assert await store.get_messages(a.tenant.id, a.conv.id) == [appended.message]
    assert await store.get_agent(a.tenant.id, agent_a.id) == agent_a
    assert await store.get_contact(a.tenant.id, a.contact.id) == a.contact


# --- conversations ---------------------------------------------------------------


async def test_create_conversation(store: Store) -> None:
    w = await new_world(store)
    c = w.conv
    assert (c.status, c.last_seq, c.assignee_id, c.external_thread_id, c.channel) == (
        ConversationStatus.OPEN,
        0,
        None,
        None,
        Channel.WIDGET,
    )
    assert (c.created_at, c.updated_at) == (100.0, 100.0)
    second = await store.create_conversation(
        tenant_id=w.tenant.id, channel=Channel.WIDGET, contact_id=w.contact.id, now=101.0
    )
    assert second.id != c.id and second.epoch and second.epoch != c.epoch
    assert await store.get_conversation(w.tenant.id, c.id) == c
    with pytest.raises(NotFound):
        await store.get_conversation(w.tenant.id, "missing")
    with pytest.raises(NotFound):
        await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.WIDGET, contact_id="nope", now=1.0)


async def test_external_thread_is_get_or_create(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id

    async def thread(channel: Channel, thread_id: str) -> Conversation:
        return await store.create_conversation(
            tenant_id=t, channel=channel, contact_id=w.contact.id, now=300.0, external_thread_id=thread_id
        )

    raced = await asyncio.gather(*(thread(Channel.FACEBOOK, "fb-1") for _ in range(10)))
    assert len({c.id for c in raced}) == 1
    assert raced[0].external_thread_id == "fb-1" and raced[0].channel == Channel.FACEBOOK
    assert (await thread(Channel.FACEBOOK, "fb-1")).id == raced[0].id
    assert (await thread(Channel.ZALO, "fb-1")).id != raced[0].id
    t2 = await new_world(store, "Other")
    theirs = await store.create_conversation(
        tenant_id=t2.tenant.id,
        channel=Channel.FACEBOOK,
        contact_id=t2.contact.id,
        now=1.0,
        external_thread_id="fb-1",
    )
    assert theirs.id != raced[0].id


async def test_list_conversations_filters_and_ordering(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    agent = await new_agent(store, t)
    other_contact = await store.create_contact(tenant_id=t, name=None, email=None, now=100.0)
    email = await store.create_conversation(tenant_id=t, channel=Channel.EMAIL, contact_id=other_contact.id, now=110.0)
    resolved = await store.create_conversation(tenant_id=t, channel=Channel.WIDGET, contact_id=w.contact.id, now=120.0)
    resolved = await store.update_conversation(t, resolved.id, now=130.0, status=ConversationStatus.RESOLVED)
    assigned = await store.update_conversation(t, email.id, now=140.0, assignee_id=agent.id)
    await store.append_message(t, w.conv.id, msg(), now=150.0)  # bumps w.conv to the top

    def ids(convs: list[Conversation]) -> list[str]:
        return [c.id for c in convs]

    async def listed(**kw: Any) -> list[str]:
        return ids(await store.list_conversations(t, ConversationFilter(**kw)))

    assert await listed() == [w.conv.id, assigned.id, resolved.id]
    assert await listed(limit=2) == [w.conv.id, assigned.id]
    assert await listed(updated_before=150.0) == [assigned.id, resolved.id]
    assert await listed(status=ConversationStatus.OPEN) == [w.conv.id, assigned.id]
    assert await listed(status=ConversationStatus.RESOLVED) == [resolved.id]
    assert await listed(assignee_id=agent.id) == [assigned.id]
    assert await listed(unassigned=True) == [w.conv.id, resolved.id]
    assert await listed(contact_id=w.contact.id) == [w.conv.id, resolved.id]
    assert await listed(channel=Channel.EMAIL) == [assigned.id]
    assert await listed(channel=Channel.EMAIL, unassigned=True) == []
    assert await listed(limit=0) == []


async def test_update_conversation(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    agent = await new_agent(store, t)
    c = await store.update_conversation(t, w.conv.id, now=200.0, assignee_id=agent.id)
    assert (c.assignee_id, c.updated_at, c.status) == (agent.id, 200.0, ConversationStatus.OPEN)
    c = await store.update_conversation(t, w.conv.id, now=201.0, status=ConversationStatus.PENDING)
    assert (c.assignee_id, c.status) == (agent.id, ConversationStatus.PENDING)
    c = await store.update_conversation(t, w.conv.id, now=202.0, unassign=True)
    assert c.assignee_id is None and c.updated_at == 202.0
    assert await store.get_conversation(t, w.conv.id) == c
    with pytest.raises(NotFound):
        await store.update_conversation(t, w.conv.id, now=1.0, assignee_id="no-such-agent")
    with pytest.raises(NotFound):
        await store.update_conversation(t, "missing", now=1.0, status=ConversationStatus.OPEN)
    with pytest.raises(ValueError):
        await store.update_conversation(t, w.conv.id, now=1.0, assignee_id=agent.id, unassign=True)


async def test_list_unassigned_is_oldest_first_and_open_only(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    agent = await new_agent(store, t)
    convs = [
        await store.create_conversation(tenant_id=t, channel=Channel.WIDGET, contact_id=w.contact.id, now=101.0 + i)
        for i in range(4)
    ]
    await store.update_conversation(t, convs[1].id, now=300.0, assignee_id=agent.id)
    await store.update_conversation(t, convs[2].id, now=300.0, status=ConversationStatus.RESOLVED)
    await store.append_message(t, w.conv.id, msg(), now=400.0)  # activity does not change the queue order
    assert [c.id for c in await store.list_unassigned(t, 10)] == [w.conv.id, convs[0].id, convs[3].id]
    assert [c.id for c in await store.list_unassigned(t, 1)] == [w.conv.id]


# --- messages --------------------------------------------------------------------


async def test_append_assigns_contiguous_seqs(store: Store) -> None:
    w = await new_world(store)
    results = [
        await store.append_message(
            w.tenant.id,
            w.conv.id,
            NewMessage(
                author_type=AuthorType.AGENT,
                author_id="ag-1",
                text=f"m{i}",
                client_id=f"c{i}",
                attachments=({"url": "https://x/y.png", "size": i},),
                delivery_state=DeliveryState.PENDING,
            ),
            now=200.0 + i,
        )
        for i in range(1, 11)
    ]
    assert [r.message.seq for r in results] == list(range(1, 11))
    assert all(r.created for r in results)
    assert [r.conversation.last_seq for r in results] == list(range(1, 11))
    last = results[-1]
    assert last.conversation.updated_at == 210.0
    assert last.conversation.epoch == w.conv.epoch
    m = last.message
    assert (m.tenant_id, m.conversation_id, m.author_type, m.author_id, m.text, m.client_id) == (
        w.tenant.id,
        w.conv.id,
        AuthorType.AGENT,
        "ag-1",
        "m10",
        "c10",
    )
    assert m.attachments == ({"url": "https://x/y.png", "size": 10},)
    assert (m.delivery_state, m.delivery_error, m.created_at) == (DeliveryState.PENDING, None, 210.0)
    assert await store.get_messages(w.tenant.id, w.conv.id) == [r.message for r in results]
    assert (await store.get_conversation(w.tenant.id, w.conv.id)).last_seq == 10
    with pytest.raises(NotFound):
        await store.append_message(w.tenant.id, "missing", msg(), now=1.0)


async def test_client_id_is_idempotent(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    first = await store.append_message(t, w.conv.id, msg("original", client_id="cid-1"), now=200.0)
    await store.append_message(t, w.conv.id, msg("other"), now=201.0)
    again = await store.append_message(t, w.conv.id, msg("retry text", client_id="cid-1"), now=202.0)
    assert again.created is False
    assert again.message == first.message
    assert again.conversation.last_seq == 2 and again.conversation.updated_at == 201.0
    assert [m.text for m in await store.get_messages(t, w.conv.id)] == ["original", "other"]
    # the key is scoped to the conversation
    conv2 = await store.create_conversation(tenant_id=t, channel=Channel.WIDGET, contact_id=w.contact.id, now=1.0)
    elsewhere = await store.append_message(t, conv2.id, msg("x", client_id="cid-1"), now=203.0)
    assert elsewhere.created and elsewhere.message.seq == 1


async def test_external_id_is_idempotent(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    first = await store.append_message(t, w.conv.id, msg("from facebook", external_id="mid.1"), now=200.0)
    again = await store.append_message(t, w.conv.id, msg("redelivered", external_id="mid.1"), now=201.0)
    assert (again.created, again.message, again.conversation.last_seq) == (False, first.message, 1)
    other = await store.append_message(t, w.conv.id, msg("next", external_id="mid.2"), now=202.0)
    assert other.created and other.message.seq == 2
    assert len(await store.get_messages(t, w.conv.id)) == 2


async def test_concurrent_appends_are_gapless(store: Store) -> None:
    w = await new_world(store)
    results = await asyncio.gather(
        *(store.append_message(w.tenant.id, w.conv.id, msg(f"m{i}", client_id=f"c{i}"), now=200.0) for i in range(50))
    )
    assert sorted(r.message.seq for r in results) == list(range(1, 51))
    assert all(r.created for r in results)
    assert (await store.get_conversation(w.tenant.id, w.conv.id)).last_seq == 50
    stored = await store.get_messages(w.tenant.id, w.conv.id, limit=100)
    assert [m.seq for m in stored] == list(range(1, 51))
    # each seq belongs to the append that reported it
    assert {r.message.seq: r.message.client_id for r in results} == {m.seq: m.client_id for m in stored}


async def test_append_messages_is_one_ordered_batch(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    first = await store.append_message(t, w.conv.id, msg("stored", client_id="old"), now=200.0)
    batch = [
        msg("a", client_id="a"),
        msg("retry of stored", client_id="old"),
        msg("b", external_id="mid.b"),
        msg("repeat of a", client_id="a"),
        msg("c"),
        msg("repeat of b", external_id="mid.b"),
    ]
    res = await store.append_messages(t, w.conv.id, batch, now=300.0)
    assert [r.created for r in res] == [True, False, True, False, True, False]
    assert [r.message.seq for r in res] == [2, 1, 3, 2, 4, 3]
    assert res[1].message == first.message
    assert res[3].message == res[0].message and res[5].message == res[2].message
    assert [r.message.text for r in res] == ["a", "stored", "b", "a", "c", "b"]
    assert all(r.conversation.last_seq == 4 and r.conversation.updated_at == 300.0 for r in res)
    stored = await store.get_messages(t, w.conv.id)
    assert [(m.seq, m.text) for m in stored] == [(1, "stored"), (2, "a"), (3, "b"), (4, "c")]
    assert stored[1:] == [res[0].message, res[2].message, res[4].message]
    # all duplicates: nothing changes, the conversation is reported as it is
    again = await store.append_messages(t, w.conv.id, [msg("x", client_id="a"), msg("y", client_id="old")], now=400.0)
    assert [(r.created, r.message.seq) for r in again] == [(False, 2), (False, 1)]
    assert again[0].conversation.last_seq == 4 and again[0].conversation.updated_at == 300.0
    assert await store.append_messages(t, w.conv.id, [], now=1.0) == []


async def test_append_messages_rejects_foreign_and_oversized_batches(store: Store) -> None:
    a = await new_world(store, "A")
    b = await new_world(store, "B")
    with pytest.raises(NotFound):
        await store.append_messages(b.tenant.id, a.conv.id, [msg("x"), msg("y")], now=1.0)
    with pytest.raises(ValueError):
        await store.append_messages(a.tenant.id, a.conv.id, [msg(str(i)) for i in range(201)], now=1.0)
    full = await store.append_messages(a.tenant.id, a.conv.id, [msg(str(i), client_id=str(i)) for i in range(200)],
                                       now=1.0)
    assert [r.message.seq for r in full] == list(range(1, 201))
    assert (await store.get_conversation(a.tenant.id, a.conv.id)).last_seq == 200
    assert await store.get_messages(b.tenant.id, b.conv.id) == []


async def test_concurrent_batches_interleave_without_gaps(store: Store) -> None:
    w = await new_world(store)
    batches = [[msg(f"{b}.{i}", client_id=f"k{(b * 7 + i) % 30}") for i in range(10)] for b in range(6)]
    results = await asyncio.gather(*(store.append_messages(w.tenant.id, w.conv.id, x, now=200.0) for x in batches))
    created = [r.message for rs in results for r in rs if r.created]
    assert sorted(m.seq for m in created) == list(range(1, 31))
    stored = await store.get_messages(w.tenant.id, w.conv.id, limit=100)
    assert [m.seq for m in stored] == list(range(1, 31))
    # every result of a key is the one stored message of that key
    by_key = {m.client_id: m for m in stored}
    assert all(r.message == by_key[r.message.client_id] for rs in results for r in rs)
    for rs in results:  # within a batch, new messages take increasing seqs in input order
        seqs = [r.message.seq for r in rs if r.created]
        assert seqs == sorted(seqs)


async def test_append_batch_spans_conversations_and_skips_foreign_ones(store: Store) -> None:
    a = await new_world(store, "A")
    b = await new_world(store, "B")
    t = a.tenant.id
    a2 = await store.create_conversation(tenant_id=t, channel=Channel.WIDGET, contact_id=a.contact.id, now=1.0)
    await store.append_message(t, a2.id, msg("earlier", client_id="k"), now=1.0)
    reqs = [
        AppendRequest(t, a.conv.id, msg("a1", client_id="k")),  # same key as in a2: scoped per conversation
        AppendRequest(t, a2.id, msg("retry", client_id="k")),  # duplicate of the stored one
        AppendRequest(t, b.conv.id, msg("foreign")),  # B's conversation under A's tenant: refused
        AppendRequest(t, a2.id, msg("a2 new", client_id="n")),
        AppendRequest(t, "missing", msg("nowhere")),
        AppendRequest(t, a.conv.id, msg("a1 again", client_id="k")),  # duplicate within the batch
        AppendRequest(t, a.conv.id, msg("a2nd")),
    ]
    res = await store.append_batch(reqs, now=5.0)
    assert res[2] is None and res[4] is None
    got = [(r.message.conversation_id, r.message.seq, r.message.text, r.created) if r else None for r in res]
    assert got == [
        (a.conv.id, 1, "a1", True), (a2.id, 1, "earlier", False), None, (a2.id, 2, "a2 new", True), None,
        (a.conv.id, 1, "a1", False), (a.conv.id, 2, "a2nd", True),
    ]
    assert res[0] is not None and res[6] is not None and res[3] is not None
    assert res[0].conversation.last_seq == 2 and res[6].conversation.updated_at == 5.0
    assert res[3].conversation.last_seq == 2
    assert (await store.get_conversation(t, a.conv.id)).last_seq == 2
    assert (await store.get_conversation(t, a2.id)).last_seq == 2
    assert await store.get_messages(b.tenant.id, b.conv.id) == []
    assert (await store.get_conversation(b.tenant.id, b.conv.id)).last_seq == 0
    assert await store.append_batch([], now=1.0) == []
    with pytest.raises(ValueError):
        await store.append_batch([AppendRequest(t, a.conv.id, msg(str(i))) for i in range(201)], now=1.0)


async def test_append_batch_never_answers_with_another_tenants_messages(store: Store) -> None:
    """A key that exists in another tenant's conversation is not a duplicate for the caller,
    and a batch naming one conversation under two tenants serves only the owner."""
    a = await new_world(store, "A")
    b = await new_world(store, "B")
    await store.append_message(b.tenant.id, b.conv.id, msg("b's secret", client_id="k", external_id="x"), now=1.0)
    res = await store.append_batch([AppendRequest(a.tenant.id, b.conv.id, msg("probe", client_id="k")),
                                    AppendRequest(a.tenant.id, b.conv.id, msg("probe", external_id="x"))], now=2.0)
    assert res == [None, None]
    mixed = await store.append_batch([
        AppendRequest(a.tenant.id, b.conv.id, msg("intruder", client_id="i")),
        AppendRequest(b.tenant.id, b.conv.id, msg("owner", client_id="o")),
        AppendRequest(b.tenant.id, b.conv.id, msg("retry", client_id="k")),
        AppendRequest(a.tenant.id, a.conv.id, msg("own", client_id="k")),
    ], now=3.0)
    got = [(r.message.text, r.message.seq, r.created) if r else None for r in mixed]
    assert got == [None, ("owner", 2, True), ("b's secret", 1, False), ("own", 1, True)]
    assert [m.text for m in await store.get_messages(b.tenant.id, b.conv.id)] == ["b's secret", "owner"]
    assert (await store.get_conversation(b.tenant.id, b.conv.id)).last_seq == 2


async def test_a_retry_of_stored_messages_only_returns_them_with_their_conversation(store: Store) -> None:
    w = await new_world(store)
    first = await store.append_messages(w.tenant.id, w.conv.id, [msg("one", client_id="1"), msg("two", client_id="2")],
                                        now=1.0)
    again = await store.append_batch([AppendRequest(w.tenant.id, w.conv.id, msg("two", client_id="2")),
                                      AppendRequest(w.tenant.id, w.conv.id, msg("one", client_id="1"))], now=9.0)
    assert [(r.message.id, r.created, r.conversation.last_seq) for r in again if r] == [
        (first[1].message.id, False, 2), (first[0].message.id, False, 2)]
    assert (await store.get_conversation(w.tenant.id, w.conv.id)).updated_at == 1.0  # nothing written


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_append_is_one_write_unless_a_batch_holds_a_retry(kind: str, tmp_path: Path) -> None:
    """The append runs first as if nothing were stored yet (PostgreSQL: one statement;
    SQLite: one run of statements, BEGIN to COMMIT); a stored duplicate in the batch
    fails it (undone whole: no seq taken) and the batch runs again with the duplicates read
    first, answering the retry with the stored message and storing the rest with
    contiguous seqs."""
    if kind == "sqlite":
        b = Backend(kind, f"sqlite:///{tmp_path / 'store.sqlite3'}", None)
    else:
        b = Backend(kind, PG_DSN, random_schema())
    try:
        store = await b.open()
        assert isinstance(store, SqliteStore | PostgresStore)
        w = await new_world(store)
        t = w.tenant.id
        first = await store.append_messages(t, w.conv.id, [msg("one", client_id="c1"), msg("two", client_id="c2")],
                                            now=1.0)
        assert store.optimistic_retries == 0
        mixed = await store.append_batch([AppendRequest(t, w.conv.id, msg("three", client_id="c3")),
                                          AppendRequest(t, w.conv.id, msg("two again", client_id="c2")),
                                          AppendRequest(t, w.conv.id, msg("four", client_id="c4"))], now=2.0)
        assert store.optimistic_retries == 1
        assert [(r.message.text, r.message.seq, r.created) for r in mixed if r] == [
            ("three", 3, True), ("two", 2, False), ("four", 4, True)]
        assert mixed[1] is not None and mixed[1].message.id == first[1].message.id
        assert [m.seq for m in await store.get_messages(t, w.conv.id)] == [1, 2, 3, 4]
        later = await store.append_batch([AppendRequest(t, w.conv.id, msg("five", client_id="c5"))], now=3.0)
        assert later[0] is not None and later[0].message.seq == 5 and store.optimistic_retries == 1
        assert later[0].conversation.last_seq == 5 and later[0].conversation.updated_at == 3.0
        if isinstance(store, SqliteStore):
            assert store.one_job_appends == 2  # the first and the last
    finally:
        await b.close_all()
        if b.schema is not None:
            await drop_schema(b.schema)


async def test_sqlite_one_job_append_waits_for_another_process_lock_off_the_loop(tmp_path: Path) -> None:
    """A batch whose one-job BEGIN finds the file's write lock held by another connection
    (an admin command, another process) runs again the locking way, whose BEGIN waits for
    the lock without blocking the loop; the append then lands once the lock is released."""
    path = tmp_path / "store.sqlite3"
    b = Backend("sqlite", f"sqlite:///{path}", None)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        store = await b.open()
        assert isinstance(store, SqliteStore)
        w = await new_world(store)
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(store.append_message(w.tenant.id, w.conv.id, msg("hi", client_id="h"), now=1.0))
        await until(lambda: store.busy_retries >= 2)  # the loop keeps running meanwhile: this polls
        assert not task.done()
        other.execute("COMMIT")
        res = await asyncio.wait_for(task, 5)
        assert res.message.seq == 1 and store.optimistic_retries == 1
        assert [m.text for m in await store.get_messages(w.tenant.id, w.conv.id)] == ["hi"]
    finally:
        other.close()
        await b.close_all()


async def blocked_by(holder: asyncpg.Connection, timeout: float = 10.0) -> None:
    """Until some session waits for a lock that `holder`'s session holds (polled from a
    connection of its own: PostgreSQL notifies nobody; `timeout` is a generous bound)."""
    probe = await asyncpg.connect(PG_DSN)
    try:
        async with asyncio.timeout(timeout):
            while True:
                if await probe.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                                        holder.get_server_pid()):
                    return
                await asyncio.sleep(0.01)
    finally:
        await probe.close()


@pytest.mark.postgres
async def test_postgres_append_survives_a_deadlock() -> None:
    """The append statement that loses a deadlock is answered by the locking transaction.
    Another connection holds one of two conversations and then wants the other; the append
    wants both. Run with either conversation held first: in one of the two the append holds
    what the other connection wants next, a deadlock that PostgreSQL breaks by failing the
    append's statement (the other connection waits 20 s before it checks)."""
    b = Backend("postgres", PG_DSN, random_schema())
    try:
        store = await b.open()
        assert isinstance(store, PostgresStore)
        w = await new_world(store)
        other = await asyncpg.connect(PG_DSN)
        try:
            await other.execute(f'SET search_path = "{b.schema}"; SET deadlock_timeout = \'20s\'')
            async def new_conv() -> str:
                return (await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.WIDGET,
                                                        contact_id=w.contact.id, now=1.0)).id

            for held_first in (0, 1):
                # created in id order, so that the append's row locks come in the same order
                # whether its plan visits the conversations by id or as stored
                pair = [await new_conv()]
                while (nxt := await new_conv()) < pair[0]:
                    pass
                pair.append(nxt)
                tx = other.transaction()
                await tx.start()
                await other.execute("UPDATE conversations SET updated_at = 7 WHERE id = $1", pair[held_first])
                append = asyncio.create_task(store.append_batch(
                    [AppendRequest(w.tenant.id, c, msg(f"to {c}", client_id=c)) for c in pair], now=5.0))
                await blocked_by(other)  # the append has taken what it could and waits
                await asyncio.wait_for(other.execute("UPDATE conversations SET updated_at = 8 WHERE id = $1",
                                                     pair[1 - held_first]), 10)
                await tx.commit()
                res = await asyncio.wait_for(append, 10)
                assert [(r.message.seq, r.created) for r in res if r] == [(1, True), (1, True)]
                for c in pair:
                    assert [m.seq for m in await store.get_messages(w.tenant.id, c)] == [1]
        finally:
            await other.close()
        assert store.deadlocks >= 1  # more when the locking transaction lost one too (and ran again)
    finally:
        await b.close_all()
        await drop_schema(b.schema or "")


@pytest.mark.postgres
async def test_postgres_locking_append_runs_again_after_a_lost_deadlock() -> None:
    """The locking transaction (what answers an append statement that lost a deadlock) can
    lose one too, to a transaction that takes its row locks out of id order: it runs again
    after a pause and is answered. The other connection holds the later conversation and
    then wants the earlier, which the locking transaction took first."""
    b = Backend("postgres", PG_DSN, random_schema())
    try:
        store = await b.open()
        assert isinstance(store, PostgresStore)
        w = await new_world(store)
        pair = sorted([(await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.WIDGET,
                                                        contact_id=w.contact.id, now=1.0)).id for _ in range(2)])
        other = await asyncpg.connect(PG_DSN)
        try:
            await other.execute(f'SET search_path = "{b.schema}"; SET deadlock_timeout = \'20s\'')
            tx = other.transaction()
            await tx.start()
            await other.execute("UPDATE conversations SET updated_at = 7 WHERE id = $1", pair[1])
            append = asyncio.create_task(store._append_locking(
                [AppendRequest(w.tenant.id, c, msg(f"to {c}", client_id=c)) for c in pair], 5.0))
            await blocked_by(other)  # it holds the first conversation and waits for the second
            await asyncio.wait_for(other.execute("UPDATE conversations SET updated_at = 8 WHERE id = $1",
                                                 pair[0]), 10)
            await tx.commit()
            res = await asyncio.wait_for(append, 10)
        finally:
            await other.close()
        assert [(r.message.seq, r.created) for r in res if r] == [(1, True), (1, True)]
        for c in pair:
            assert [m.seq for m in await store.get_messages(w.tenant.id, c)] == [1]
        assert store.deadlocks == 1
    finally:
        await b.close_all()
        await drop_schema(b.schema or "")


async def test_postgres_append_plans_are_index_lookups_on_a_fresh_schema() -> None:
    """The append pool keeps one generic plan per statement for the connection's life, made
    at its first execution, here on empty tables: it must be per-key index lookups in nested
    loops (no scan of a table, no hash of one), or it would slow down as the tables grow."""
    b = Backend("postgres", PG_DSN, random_schema())
    try:
        store = await b.open()
        assert isinstance(store, PostgresStore)
        w = await new_world(store)
        conv = (await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.WIDGET,
                                                contact_id=w.contact.id, now=1.0)).id
        c = await asyncpg.connect(PG_DSN, server_settings={"search_path": f'"{b.schema}"', **APPEND_POOL_SETTINGS})
        try:
            async def literal(value: Any, pg_type: str) -> str:
                if not isinstance(value, list):
                    return repr(value)
                text = str(await c.fetchval(f"SELECT $1::{pg_type}::text", value))
                return "'" + text.replace("'", "''") + f"'::{pg_type}"

            dup_sql, *dup_args = store._sql_duplicates([(conv, "a")], [(conv, "b")])
            types = ["text[]", "text[]", "int[]", "float8"] + ["text[]"] * 3 + ["bigint[]"] + ["text[]"] * 6 + [
                "float8[]", "text[]"]
            append_args: list[Any] = [[conv], [w.tenant.id], [1], 5.0, [uuid.uuid4().hex], [w.tenant.id], [conv], [1],
                                      ["c1"], [None], ["contact"], [None], ["hi"], ["[]"], [5.0], ["sent"]]
            plans = []
            # and the foreign-key check each inserted message fires (PostgreSQL's own query
            # text, planned the same way: generic, under the pool's settings). Its query is
            # not ours to shape: on a table that has never been analyzed its generic plan may
            # take an index led by tenant_id; once autovacuum has analyzed the table (within
            # about a minute of its first 50 changes) PostgreSQL re-plans, and then it is this.
            fk_sql = ('SELECT 1 FROM ONLY "conversations" x WHERE "tenant_id" OPERATOR(pg_catalog.=) $1'
                      ' AND "id" OPERATOR(pg_catalog.=) $2 FOR KEY SHARE OF x')
            for name, sql, args, arg_types in (("d", dup_sql, dup_args, ["text[]"] * 4),
                                               ("a", _APPEND, append_args, types),
                                               ("f", fk_sql, [w.tenant.id, conv], ["text", "text"])):
                if name == "f":
                    await c.execute("ANALYZE conversations")
                await c.execute(f"PREPARE {name}({', '.join(arg_types)}) AS {sql}")
                lits = [await literal(v, t) for v, t in zip(args, arg_types, strict=True)]
                rows = await c.fetch(f"EXPLAIN (COSTS OFF) EXECUTE {name}({', '.join(lits)})")
                plans.append("\n".join(r[0] for r in rows))
        finally:
            await c.close()
        for plan in plans:
            assert "Seq Scan" not in plan and "Hash" not in plan and "Merge" not in plan, plan
        assert "Index Scan using messages_client_id_idx" in plans[0], plans[0]
        assert "Index Scan using conversations_pkey" in plans[1], plans[1]
        assert "Index Scan using conversations_pkey" in plans[2] or \
            "Index Scan using conversations_tenant_id_id_key" in plans[2], plans[2]
    finally:
        await b.close_all()
        await drop_schema(b.schema or "")


async def test_sqlite_duplicate_lookup_probes_each_key_once(tmp_path: Path) -> None:
    """The batch's duplicate lookup on SQLite: one probe of the partial unique index per
    (conversation, key) pair, the pairs as the outer loop — not every conversation of the
    batch against every key (n² probes), nor a scan of `messages`."""
    store = SqliteStore(str(tmp_path / "plan.sqlite3"))
    await store.open()
    try:
        await store.migrate()
        sql, *args = store._sql_duplicates([("c1", "a"), ("c2", "b")], [("c1", "x")])
        async with store.reader() as conn:
            plan = [str(r["detail"]) for r in await conn.fetch("EXPLAIN QUERY PLAN " + sql, *args)]
            assert await conn.fetch(sql, *args) == []
    finally:
        await store.close()
    searches = [line for line in plan if line.startswith("SEARCH m ")]
    assert searches == ["SEARCH m USING INDEX messages_client_id_idx (conversation_id=? AND client_id=?)",
                        "SEARCH m USING INDEX messages_external_id_idx (conversation_id=? AND external_id=?)"], plan
    assert not [line for line in plan if line.startswith("SCAN m")], plan


async def test_concurrent_batches_over_shared_conversations_do_not_deadlock(backend: Backend) -> None:
    """Two nodes' batches lock the same conversations: in id order, so both commit."""
    s1, s2 = await backend.open(), await backend.open()
    w = await new_world(s1)
    t = w.tenant.id
    convs = [w.conv.id] + [
        (await s1.create_conversation(tenant_id=t, channel=Channel.WIDGET, contact_id=w.contact.id, now=1.0)).id
        for _ in range(5)]

    async def node(store: Store, tag: str, order: list[str]) -> None:
        for r in range(10):
            await store.append_batch([AppendRequest(t, c, msg(f"{tag}{r}", client_id=f"{tag}{r}{c}")) for c in order],
                                     now=2.0)

    await asyncio.wait_for(asyncio.gather(node(s1, "x", convs), node(s2, "y", convs[::-1])), 30)
    for c in convs:
        stored = await s1.get_messages(t, c, limit=100)
        assert [m.seq for m in stored] == list(range(1, 21))


async def test_concurrent_duplicate_client_ids_store_once(store: Store) -> None:
    w = await new_world(store)
    results = await asyncio.gather(
        *(
            store.append_message(w.tenant.id, w.conv.id, msg(f"try {i}", client_id=f"k{i % 5}"), now=200.0)
            for i in range(25)
        )
    )
    created = [r for r in results if r.created]
    assert len(created) == 5
    by_key: dict[str | None, set[str]] = {}
    for r in results:
        by_key.setdefault(r.message.client_id, set()).add(r.message.id)
    assert all(len(v) == 1 for v in by_key.values()) and len(by_key) == 5
    stored = await store.get_messages(w.tenant.id, w.conv.id)
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5]
    assert (await store.get_conversation(w.tenant.id, w.conv.id)).last_seq == 5


async def test_get_messages_windows(store: Store) -> None:
    w = await new_world(store)
    await append_n(store, w, 20)

    async def seqs(**kw: Any) -> list[int]:
        return [m.seq for m in await store.get_messages(w.tenant.id, w.conv.id, **kw)]

    assert await seqs() == list(range(1, 21))
    assert await seqs(after_seq=5, limit=3) == [6, 7, 8]
    assert await seqs(after_seq=5, before_seq=10) == [6, 7, 8, 9]
    assert await seqs(before_seq=10, limit=3) == [1, 2, 3]
    assert await seqs(before_seq=10, limit=3, newest=True) == [7, 8, 9]
    assert await seqs(limit=5, newest=True) == [16, 17, 18, 19, 20]
    assert await seqs(after_seq=17, limit=5, newest=True) == [18, 19, 20]
    assert await seqs(after_seq=20) == []
    assert await seqs(limit=0) == []
    with pytest.raises(NotFound):
        await store.get_messages(w.tenant.id, "missing")


async def test_set_delivery_state(store: Store) -> None:
    w = await new_world(store)
    appended = await store.append_message(
        w.tenant.id,
        w.conv.id,
        NewMessage(author_type=AuthorType.AGENT, author_id="a", text="out", delivery_state=DeliveryState.PENDING),
        now=200.0,
    )
    failed = await store.set_delivery_state(w.tenant.id, appended.message.id, DeliveryState.FAILED, "HTTP 500")
    assert (failed.delivery_state, failed.delivery_error) == (DeliveryState.FAILED, "HTTP 500")
    sent = await store.set_delivery_state(w.tenant.id, appended.message.id, DeliveryState.SENT)
    assert (sent.delivery_state, sent.delivery_error) == (DeliveryState.SENT, None)
    assert sent.seq == appended.message.seq and sent.text == "out"
    assert await store.get_messages(w.tenant.id, w.conv.id) == [sent]
    with pytest.raises(NotFound):
        await store.set_delivery_state(w.tenant.id, "missing", DeliveryState.SENT)


_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")  # any encodable text but NUL
_TEXT = st.text(_CHARS, max_size=300)
_SHORT = st.text(_CHARS, max_size=20)
_JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _SHORT


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, attributes=st.dictionaries(_SHORT, _JSON_SCALARS, max_size=4))
@example(text="Xin chào, tôi cần hỗ trợ đơn hàng #123 — cảm ơn! 😊", attributes={"thành phố": "Hà Nội"})
@example(text="", attributes={})
async def test_text_round_trips(store: Store, text: str, attributes: dict[str, Any]) -> None:
    w = await new_world(store)
    appended = await store.append_message(
        w.tenant.id,
        w.conv.id,
        NewMessage(
            author_type=AuthorType.CONTACT,
            author_id=None,
            text=text,
            client_id=text or None,
            attachments=({"name": text, "meta": attributes},),
        ),
        now=200.0,
    )
    [stored] = await store.get_messages(w.tenant.id, w.conv.id)
    assert stored == appended.message
    assert (stored.text, stored.client_id, stored.attachments) == (
        text,
        text or None,
        ({"name": text, "meta": attributes},),
    )
    contact = await store.update_contact(w.tenant.id, w.contact.id, {"name": text, "attributes": attributes})
    assert await store.get_contact(w.tenant.id, w.contact.id) == contact
    assert (contact.name, contact.attributes) == (text, attributes)


# --- read positions --------------------------------------------------------------


async def test_set_read_is_monotonic_and_capped(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    assert await store.set_read(t, w.conv.id, "agent:1", 3) == 0  # nothing to read yet
    await append_n(store, w, 5)
    assert await store.set_read(t, w.conv.id, "agent:1", 3) == 3
    assert await store.set_read(t, w.conv.id, "agent:1", 2) == 3
    assert await store.set_read(t, w.conv.id, "agent:1", 99) == 5
    assert await store.set_read(t, w.conv.id, "agent:1", -1) == 5
    assert await store.set_read(t, w.conv.id, "contact:9", 4) == 4
    assert await store.get_reads(t, w.conv.id) == {"agent:1": 5, "contact:9": 4}
    raced = await asyncio.gather(*(store.set_read(t, w.conv.id, "agent:2", s) for s in (1, 5, 2, 4, 3)))
    assert max(raced) == 5
    assert (await store.get_reads(t, w.conv.id))["agent:2"] == 5
    with pytest.raises(NotFound):
        await store.set_read(t, "missing", "agent:1", 1)


async def test_get_read_positions(store: Store) -> None:
    w = await new_world(store)
    t = w.tenant.id
    convs = [w.conv] + [
        await store.create_conversation(tenant_id=t, channel=Channel.WIDGET, contact_id=w.contact.id, now=1.0)
        for _ in range(2)
    ]
    for c in convs:
        await store.append_message(t, c.id, msg(), now=200.0)
        await store.append_message(t, c.id, msg(), now=201.0)
    await store.set_read(t, convs[0].id, "agent:1", 2)
    await store.set_read(t, convs[1].id, "agent:1", 1)
    await store.set_read(t, convs[2].id, "agent:2", 2)
    ids = [c.id for c in convs]
    assert await store.get_read_positions(t, "agent:1", ids) == {ids[0]: 2, ids[1]: 1, ids[2]: 0}
    assert await store.get_read_positions(t, "agent:2", ids[:2]) == {ids[0]: 0, ids[1]: 0}
    assert await store.get_read_positions(t, "agent:1", []) == {}


# --- assignment ------------------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    w: World
    a1: Agent
    a2: Agent

    @property
    def tenant_id(self) -> str:
        return self.w.tenant.id


NOW = 1000.0
FRESH_AFTER = NOW - 45.0


async def new_desk(store: Store, *, capacity: int = 2) -> Desk:
    w = await new_world(store)
    a1 = await new_agent(store, w.tenant.id, "Lan", capacity=capacity, now=100.0)
    a2 = await new_agent(store, w.tenant.id, "Hùng", capacity=capacity, now=101.0)
    await store.touch_presence("node-1", {a1.id: 1}, NOW - 10)
    await store.touch_presence("node-2", {a2.id: 2}, NOW - 10)
    return Desk(w, a1, a2)


async def new_conv(store: Store, d: Desk) -> Conversation:
    return await store.create_conversation(
        tenant_id=d.tenant_id, channel=Channel.WIDGET, contact_id=d.w.contact.id, now=NOW
    )


async def assign(store: Store, d: Desk, conv_id: str, *, fresh_after: float = FRESH_AFTER) -> str | None:
    conv = await store.assign_next_agent(d.tenant_id, conv_id, now=NOW, fresh_after=fresh_after)
    return None if conv is None else conv.assignee_id


async def test_assign_round_robin_respects_capacity(store: Store) -> None:
    d = await new_desk(store, capacity=2)
    convs = [d.w.conv] + [await new_conv(store, d) for _ in range(4)]
    # same `now` for every call: the rotation must not depend on distinct timestamps
    assert [await assign(store, d, c.id) for c in convs] == [d.a1.id, d.a2.id, d.a1.id, d.a2.id, None]
    assigned = await store.get_conversation(d.tenant_id, convs[0].id)
    assert (assigned.assignee_id, assigned.updated_at) == (d.a1.id, NOW)
    assert await assign(store, d, convs[0].id) is None  # already assigned
    # a resolved conversation frees a slot
    await store.update_conversation(d.tenant_id, convs[1].id, now=NOW, status=ConversationStatus.RESOLVED)
    assert await assign(store, d, convs[4].id) == d.a2.id
    resolved = await new_conv(store, d)
    await store.update_conversation(d.tenant_id, resolved.id, now=NOW, status=ConversationStatus.RESOLVED)
    assert await assign(store, d, resolved.id) is None  # only open conversations are assigned


async def test_assign_needs_online_agents_with_fresh_presence(store: Store) -> None:
    d = await new_desk(store, capacity=5)
    t = d.tenant_id
    await store.set_agent_status(t, d.a1.id, AgentStatus.AWAY)
    assert await assign(store, d, (await new_conv(store, d)).id) == d.a2.id
    assert await assign(store, d, (await new_conv(store, d)).id) == d.a2.id
    await store.set_agent_status(t, d.a2.id, AgentStatus.OFFLINE)
    assert await assign(store, d, (await new_conv(store, d)).id) is None
    await store.set_agent_status(t, d.a1.id, AgentStatus.ONLINE)
    await store.set_agent_status(t, d.a2.id, AgentStatus.ONLINE)
    # stale presence does not count
    assert await assign(store, d, (await new_conv(store, d)).id, fresh_after=NOW) is None
    # zero sockets: the node holds none (the row stays: when they left); another node with sockets counts
    await store.touch_presence("node-1", {d.a1.id: 0}, NOW)
    await store.touch_presence("node-3", {d.a2.id: 1, "no-such-agent": 1}, NOW)
    await store.touch_presence("node-2", {d.a2.id: 0}, NOW)
    assert await assign(store, d, (await new_conv(store, d)).id) == d.a2.id
    await store.touch_presence("node-3", {d.a2.id: 0}, NOW)
    assert await assign(store, d, (await new_conv(store, d)).id) is None
    with pytest.raises(NotFound):
        await store.assign_next_agent(t, "missing", now=NOW, fresh_after=FRESH_AFTER)


async def test_presence_flips_once_each_way_and_counts_live_connections(store: Store) -> None:
    """Issue 31: `present` is set by the write recording a connection and cleared once no
    row of the agent is fresher than the TTL; each flip is returned once; only rows with
    sockets > 0 that are fresh count as connected."""
    w = await new_world(store)
    other = await new_world(store, "Other")
    a1 = await new_agent(store, w.tenant.id, "Lan", now=100.0)
    a2 = await new_agent(store, w.tenant.id, "Hùng", now=101.0)
    o1 = await new_agent(store, other.tenant.id, "Mai", now=102.0)
    assert not (await store.get_agent(w.tenant.id, a1.id)).present
    made = await store.touch_presence("node-1", {a1.id: 2, a2.id: 0, o1.id: 1}, NOW)
    assert sorted(a.id for a in made) == sorted([a1.id, o1.id]) and all(a.present for a in made)
    assert await store.touch_presence("node-2", {a1.id: 1}, NOW) == []  # already present
    assert await store.connected_agents(w.tenant.id, NOW - 30) == {a1.id}
    assert await store.connected_agents(other.tenant.id, NOW - 30) == {o1.id}
    # a1 leaves node-1 but is still connected to node-2; o1's node stops heartbeating
    await store.touch_presence("node-1", {a1.id: 0}, NOW + 10)
    assert await store.connected_agents(w.tenant.id, NOW + 10 - 30) == {a1.id}
    await store.touch_presence("node-2", {a1.id: 0}, NOW + 20)
    assert await store.connected_agents(w.tenant.id, NOW + 20 - 30) == set()  # routing drops them at once
    assert (await store.get_agent(w.tenant.id, a1.id)).present  # shown as before until the TTL
    assert await store.expire_presence(NOW + 20 - 30) == []
    # o1's last row is at NOW: gone at NOW + 30; a1's at NOW + 20: gone at NOW + 50
    gone = await store.expire_presence(NOW + 31 - 30)
    assert [a.id for a in gone] == [o1.id] and not gone[0].present
    assert await store.expire_presence(NOW + 31 - 30) == []  # flipped once
    assert await store.connected_agents(other.tenant.id, NOW + 31 - 30) == set()
    assert [a.id for a in await store.expire_presence(NOW + 51 - 30)] == [a1.id]
    agent = await store.get_agent(w.tenant.id, a1.id)
    assert not agent.present and agent.status == a1.status and agent.shown_status == AgentStatus.OFFLINE
    # back: present again (their chosen status untouched)
    await store.set_agent_status(w.tenant.id, a1.id, AgentStatus.AWAY)
    made = await store.touch_presence("node-3", {a1.id: 1}, NOW + 60)
    assert [(a.id, a.status, a.present) for a in made] == [(a1.id, AgentStatus.AWAY, True)]


async def test_queue_position_counts_older_unassigned_open_conversations(store: Store) -> None:
    d = await new_desk(store, capacity=1)
    t = d.tenant_id
    convs = [d.w.conv] + [await store.create_conversation(tenant_id=t, channel=Channel.WIDGET,
                                                         contact_id=d.w.contact.id, now=NOW + i) for i in range(3)]
    tied = await new_conv(store, d)  # created at NOW, as convs[1]: ties are ordered by id
    assert await store.queue_position(t, tied.id) == (2 if tied.id < convs[1].id else 3)
    await store.update_conversation(t, tied.id, now=NOW, status=ConversationStatus.RESOLVED)
    assert [await store.queue_position(t, c.id) for c in convs] == [1, 2, 3, 4]
    assert await assign(store, d, convs[0].id) == d.a1.id
    assert [await store.queue_position(t, c.id) for c in convs] == [None, 1, 2, 3]
    await store.update_conversation(t, convs[1].id, now=NOW, status=ConversationStatus.RESOLVED)
    assert [await store.queue_position(t, c.id) for c in convs[1:]] == [None, 1, 2]
    with pytest.raises(NotFound):
        await store.queue_position(t, "missing")
    other = await new_world(store, "Other")
    with pytest.raises(NotFound):
        await store.queue_position(other.tenant.id, convs[2].id)


async def test_concurrent_assignment_never_exceeds_capacity(store: Store) -> None:
    d = await new_desk(store, capacity=3)
    convs = [await new_conv(store, d) for _ in range(10)]
    got = await asyncio.gather(*(assign(store, d, c.id) for c in convs))
    assert sorted(a for a in got if a is not None) == sorted([d.a1.id] * 3 + [d.a2.id] * 3)
    assert got.count(None) == 4
    assert len(await store.list_unassigned(d.tenant_id, 100)) == 5  # 4 left over + the world's conversation


@pytest.mark.postgres
async def test_postgres_full_desk_answers_without_waiting_for_the_tenant_lock() -> None:
    """When no agent has room, assignment answers None without queueing behind the
    tenant's assignment lock: under churn, every new conversation of a saturated desk
    would otherwise wait its turn for that lock, holding a pool connection meanwhile.
    (SQLite has no such wait: one connection serves reads and writes in turn.)"""
    b = Backend("postgres", PG_DSN, random_schema())
    try:
        store = await b.open()
        assert isinstance(store, PostgresStore)
        d = await new_desk(store, capacity=1)
        assert [await assign(store, d, (await new_conv(store, d)).id) for _ in range(2)] == [d.a1.id, d.a2.id]
        waiting = await new_conv(store, d)
        async with store.transaction() as conn:  # another node's assignment, holding the tenant's lock
            await conn.fetchrow(f"SELECT id FROM tenants WHERE id = $1{store.row_lock}", d.tenant_id)
            assert await asyncio.wait_for(assign(store, d, waiting.id), timeout=30) is None
        with pytest.raises(NotFound):  # a missing conversation is still an error, found before any lock
            await store.assign_next_agent(d.tenant_id, "missing", now=NOW, fresh_after=FRESH_AFTER)
    finally:
        await b.close_all()
        await drop_schema(b.schema or "")


# --- factory and migrations ------------------------------------------------------


async def test_factory_opens_sqlite(tmp_path: Path) -> None:
    default = await open_store(None, sqlite_path=str(tmp_path / "data" / "gw.sqlite3"))
    url = await open_store(f"sqlite:///{tmp_path / 'url.sqlite3'}", sqlite_path="unused")
    memory = await open_store("sqlite:///:memory:", sqlite_path="unused")
    try:
        for s in (default, url, memory):
            assert isinstance(s, SqliteStore)
            await s.ping()
        assert (tmp_path / "data" / "gw.sqlite3").exists() and (tmp_path / "url.sqlite3").exists()
    finally:
        for s in (default, url, memory):
            await s.close()


@pytest.mark.parametrize("url", ["mysql://localhost/db", "sqlite://", "sqlite:///", "redis://x"])
async def test_factory_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError):
        await open_store(url, sqlite_path="unused")


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_factory_opens_postgres(scheme: str) -> None:
    schema = random_schema()
    url = PG_DSN.replace("postgresql://", f"{scheme}://", 1)
    try:
        store = await open_store(url, sqlite_path="unused", schema=schema)
        try:
            assert isinstance(store, PostgresStore) and store.schema == schema
            await store.ping()
            await new_tenant(store)
        finally:
            await store.close()
    finally:
        await drop_schema(schema)


def test_postgres_rejects_unsafe_schema_names() -> None:
    with pytest.raises(ValueError):
        PostgresStore(PG_DSN, schema='x"; DROP SCHEMA public; --')


def test_packaged_migrations_load_in_order() -> None:
    migrations = load_migrations()
    for dialect in ("sqlite", "postgres"):  # a version once per dialect (shared, or its own file)
        versions = [m.version for m in for_dialect(migrations, dialect)]
        assert versions[0] == 1 and versions == sorted(set(versions))
    assert all(m.statements for m in migrations)
    assert not any(s.rstrip().endswith(";") for m in migrations for s in m.statements)


def test_split_statements() -> None:
    script = "-- header\nCREATE TABLE a (\n    x TEXT -- trailing\n);\n\nINSERT INTO a VALUES ('p;q');\n"
    assert split_statements(script) == (
        "CREATE TABLE a (\n    x TEXT -- trailing\n)",
        "INSERT INTO a VALUES ('p;q')",
    )
    with pytest.raises(ValueError):
        split_statements("CREATE TABLE b (x TEXT)\n")


def test_duplicate_migration_versions_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "001_b.sql").write_text("SELECT 2;\n")
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.raises(ValueError):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    assert load_migrations(tmp_path)[0].statements == ("SELECT 1",)


async def test_a_heartbeat_larger_than_one_chunk_writes_every_agent(store: Store) -> None:
    w = await new_world(store)
    agents = [await new_agent(store, w.tenant.id, f"A{i}", now=100.0) for i in range(450)]
    counts = {a.id: 1 + i % 3 for i, a in enumerate(agents)}
    counts["not-an-agent"] = 1  # unknown ids are skipped
    # the loop runs other work between the chunks (3 here), not only after the whole beat
    ticks = 0
    beat = asyncio.create_task(store.touch_presence("node-big", counts, NOW))
    while not beat.done():
        ticks += 1
        await asyncio.sleep(0)
    await beat
    assert ticks >= 3
    assert isinstance(store, SqliteStore | PostgresStore)
    async with store.reader() as conn:
        rows = await conn.fetch("SELECT agent_id, sockets, updated_at FROM agent_presence WHERE node_id = $1",
                                "node-big")
    assert {r["agent_id"]: (int(r["sockets"]), float(r["updated_at"])) for r in rows} == {
        a.id: (counts[a.id], NOW) for a in agents}
    # the next beat updates in place; a zero keeps the row with 0 sockets (when they left)
    await store.touch_presence("node-big", {**dict.fromkeys(counts, 5), agents[0].id: 0}, NOW + 15)
    async with store.reader() as conn:
        rows = await conn.fetch("SELECT agent_id, sockets, updated_at FROM agent_presence WHERE node_id = $1",
                                "node-big")
    got = {r["agent_id"]: (int(r["sockets"]), float(r["updated_at"])) for r in rows}
    assert got == {a.id: (0 if a is agents[0] else 5, NOW + 15) for a in agents}


# --- the agent's list: last messages, contacts, subjects (issue 32) -------------------


async def test_get_last_messages_is_each_conversations_newest_of_the_tenant(store: Store) -> None:
    w = await new_world(store)
    other = await new_world(store, "Other")
    empty = await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.WIDGET,
                                            contact_id=w.contact.id, now=100.0)
    await append_n(store, w, 3)
    await append_n(store, other, 1)
    last = await store.get_last_messages(w.tenant.id, [w.conv.id, empty.id, other.conv.id, "missing"])
    assert list(last) == [w.conv.id]  # no message in `empty`; `other` is another tenant's
    assert (last[w.conv.id].seq, last[w.conv.id].text, last[w.conv.id].created_at) == (3, "m3", 202.0)
    assert await store.get_last_messages(w.tenant.id, []) == {}


async def test_get_contacts_only_the_tenants(store: Store) -> None:
    w = await new_world(store)
    other = await new_world(store, "Other")
    second = await store.create_contact(tenant_id=w.tenant.id, name="Minh", email="minh@example.vn", now=101.0)
    got = await store.get_contacts(w.tenant.id, [w.contact.id, second.id, second.id, other.contact.id, "missing"])
    assert got == {w.contact.id: w.contact, second.id: second}
    assert await store.get_contacts(w.tenant.id, []) == {}


async def test_conversation_subject_is_kept_from_its_creation(store: Store) -> None:
    w = await new_world(store)
    assert w.conv.subject is None
    first = await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.EMAIL, contact_id=w.contact.id,
                                            now=100.0, external_thread_id="t@x", subject="Đơn hàng #1042")
    again = await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.EMAIL, contact_id=w.contact.id,
                                            now=101.0, external_thread_id="t@x", subject="Re: other")
    assert first.subject == again.subject == "Đơn hàng #1042" and again.id == first.id
    res = await store.append_message(w.tenant.id, first.id, msg("hello"), now=102.0)
    assert res.conversation.subject == "Đơn hàng #1042"  # the append path's conversation too
    (listed,) = await store.list_conversations(w.tenant.id, ConversationFilter(channel=Channel.EMAIL))
    assert listed.subject == "Đơn hàng #1042"


async def test_migration_10_takes_each_email_conversations_first_subject(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """0010 adds conversations.subject and fills it, for email conversations stored before
    it, from the first subject recorded in email_message_ids."""
    import gateway.store.sql as sql_module

    older = [m for m in load_migrations() if m.version < 10]
    monkeypatch.setattr(sql_module, "load_migrations", lambda: older)
    store = backend.make()
    await store.open()
    await store.migrate()
    tenant = await new_tenant(store)
    contact = await store.create_contact(tenant_id=tenant.id, name="Hùng", email=None, now=100.0)
    ids = {"mail": uuid.uuid4().hex, "bare": uuid.uuid4().hex, "widget": uuid.uuid4().hex}
    async with store.transaction() as conn:  # today's create_conversation writes the new column
        for key, channel in (("mail", "email"), ("bare", "email"), ("widget", "widget")):
            await conn.execute(
                "INSERT INTO conversations (id, tenant_id, channel, contact_id, status, assignee_id, epoch, last_seq,"
                " external_thread_id, created_at, updated_at) VALUES ($1, $2, $3, $4, 'open', NULL, 'e', 0, $5,"
                " 100, 100)", ids[key], tenant.id, channel, contact.id, f"thread-{key}")
        for mid, subject, at in (("m2", "Re: Đổi trả", 102.0), ("m0", None, 100.0), ("m1", "Đổi trả", 101.0)):
            await conn.execute(
                "INSERT INTO email_message_ids (tenant_id, message_id, conversation_id, direction, subject,"
                " created_at) VALUES ($1, $2, $3, 'in', $4, $5)", tenant.id, mid, ids["mail"], subject, at)
    monkeypatch.undo()
    await store.migrate()
    got = {k: (await store.get_conversation(tenant.id, v)).subject for k, v in ids.items()}
    assert got == {"mail": "Đổi trả", "bare": None, "widget": None}
