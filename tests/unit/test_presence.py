"""PresenceTracker on a real SQLite store: connects and disconnects of one moment share
their writes, each write carries the counts as they are, and stop leaves no rows."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.domain import Agent, AgentRole, AgentStatus
from gateway.realtime.presence import PresenceTracker
from gateway.store.sql import StoreClosed
from gateway.store.sqlite import SqliteStore

NODE = "node-1"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "p.sqlite3"))
    await s.open()
    await s.migrate()
    yield s
    await s.close()


async def make_agents(store: SqliteStore, n: int) -> list[str]:
    t = await store.create_tenant(name="t", widget_key="wk", identity_secret="s" * 32, now=1.0)
    return [(await store.create_agent(tenant_id=t.id, name=f"a{i}", role=AgentRole.AGENT, token_hash=f"h{i}",
                                      capacity=3, now=1.0)).id for i in range(n)]


def rows(store: SqliteStore) -> dict[str, int]:
    """The node's presence rows holding connections, read through a connection of their own
    (what other nodes see; a row of 0 sockets only records when the agent left)."""
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        return dict(db.execute("SELECT agent_id, sockets FROM agent_presence WHERE node_id = ? AND sockets > 0",
                               (NODE,)).fetchall())


def tracker(store: SqliteStore) -> PresenceTracker:
    return PresenceTracker(store, NODE, lambda: 100.0, interval=3600)


async def test_a_storm_of_connects_and_disconnects_shares_its_transactions(store: SqliteStore) -> None:
    agents = await make_agents(store, 500)
    pt = tracker(store)
    before = store.commits
    assert await asyncio.gather(*(pt.add(a) for a in agents)) == [1] * 500
    assert rows(store) == dict.fromkeys(agents, 1)
    connect_commits = store.commits - before
    assert connect_commits <= 5, connect_commits  # one per agent before: 500

    before = store.commits
    assert await asyncio.gather(*(pt.remove(a) for a in agents)) == [0] * 500
    assert rows(store) == {}
    assert store.commits - before <= 5
    await pt.stop()


async def test_each_write_carries_the_counts_as_they_are(store: SqliteStore) -> None:
    a, b = await make_agents(store, 2)
    pt = tracker(store)
    # the same turn: a connects twice and leaves once, b connects and leaves
    assert list(await asyncio.gather(pt.add(a), pt.add(a), pt.add(b), pt.remove(a), pt.remove(b))) == [1, 2, 1, 1, 0]
    assert rows(store) == {a: 1}
    assert pt.count(a) == 1 and pt.count(b) == 0
    # a connect has been written when it returns: other nodes can assign to the agent
    assert await pt.add(b) == 1
    assert rows(store) == {a: 1, b: 1}
    assert await pt.remove(a) == 0
    assert rows(store) == {b: 1}
    await pt.stop()


async def test_stop_removes_the_rows_and_later_changes_write_nothing(store: SqliteStore) -> None:
    a, b = await make_agents(store, 2)
    pt = tracker(store)
    await asyncio.gather(pt.add(a), pt.add(b))
    assert rows(store) == {a: 1, b: 1}
    await pt.stop()
    assert rows(store) == {}
    # connections closing during the shutdown after the tracker stopped
    assert await pt.remove(a) == 0
    assert await pt.add(b) == 2
    assert rows(store) == {}


async def test_a_failed_write_fails_every_change_it_carried(store: SqliteStore) -> None:
    a, b = await make_agents(store, 2)
    pt = tracker(store)
    await store.close()
    results = await asyncio.gather(pt.add(a), pt.add(b), return_exceptions=True)
    assert [type(r) for r in results] == [StoreClosed, StoreClosed]
    await pt.stop()


async def test_a_heartbeat_does_not_bring_back_an_agent_who_left_while_it_ran(store: SqliteStore) -> None:
    # 450 agents: the heartbeat's write takes three transactions, with turns of the loop
    # between them; the last agent leaves during the first
    agents = sorted(await make_agents(store, 450))
    pt = tracker(store)
    await asyncio.gather(*(pt.add(a) for a in agents))
    last = agents[-1]
    beat = asyncio.ensure_future(pt._heartbeat())
    await asyncio.sleep(0)
    assert await pt.remove(last) == 0
    await beat
    assert rows(store) == dict.fromkeys(agents[:-1], 1)
    await pt.stop()


async def test_present_announced_on_first_connect_and_offline_after_the_ttl(store: SqliteStore) -> None:
    """Issue 31: the write recording a first connection announces the agent; the agent stays
    present for `ttl` after their last connection closed, then the expiry announces them gone
    (their chosen status kept)."""
    a, b = await make_agents(store, 2)
    now = [100.0]
    told: list[list[tuple[str, bool, str]]] = []

    async def announce(agents: list[Agent]) -> None:
        told.append([(x.id, x.present, x.shown_status.value) for x in agents])

    tenant_id = (await store.list_tenants())[0].id
    await store.set_agent_status(tenant_id, a, AgentStatus.AWAY)
    await store.set_agent_status(tenant_id, b, AgentStatus.ONLINE)
    pt = PresenceTracker(store, NODE, lambda: now[0], interval=3600, ttl=30, announce=announce)
    await pt.add(a)
    await pt.add(a)
    assert told == [[(a, True, "away")]]
    told.clear()
    await pt.remove(a)
    now[0] = 129.0
    assert await pt.expire() == [] and told == []
    await pt.add(b)  # someone else connecting changes nothing for a
    told.clear()
    now[0] = 131.0
    gone = await pt.expire()
    assert [x.id for x in gone] == [a] and told == [[(a, False, "offline")]]
    assert await pt.expire() == []  # b is connected (its row heartbeated): stays
    # a node that stops heartbeating: b's row is not refreshed, b expires ttl after it
    now[0] = 200.0
    assert [x.id for x in await pt.expire()] == [b] and told[-1] == [(b, False, "offline")]
    await pt.stop()


async def test_an_agent_who_chose_offline_is_not_announced(store: SqliteStore) -> None:
    (a,) = await make_agents(store, 1)  # created offline
    told: list[list[Agent]] = []

    async def announce(agents: list[Agent]) -> None:
        told.append(agents)

    now = [100.0]
    pt = PresenceTracker(store, NODE, lambda: now[0], interval=3600, ttl=30, announce=announce)
    await pt.add(a)
    await pt.remove(a)
    now[0] = 200.0
    assert [x.id for x in await pt.expire()] == [a]  # flipped, but nothing others see changed
    assert told == []
    await pt.stop()
