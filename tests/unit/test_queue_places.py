"""Live queue places (issue 31): a waiting visitor is told where they stand as the tenant's
queue moves and as agents come and go, without asking. `QueueNotices` folds the changes of
one tenant into at most one recompute per interval; the chat service, on a real SQLite store
and a manual clock, tells each waiting conversation its `conversation:availability`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import Envelope, conv_channel
from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.chat.principals import AgentPrincipal, VisitorPrincipal
from gateway.chat.queue import QueueNotices
from gateway.chat.service import ChatService
from gateway.config import LimitsConfig
from gateway.core.domain import AgentRole, AgentStatus, ConversationStatus
from gateway.realtime.presence import PresenceTracker
from gateway.store.sqlite import SqliteStore
from tests.support.clock import ManualClock
from tests.support.waits import until

TTL = 30.0


async def test_changes_of_a_tenant_are_folded_into_one_run_per_interval() -> None:
    clock = ManualClock()
    runs: list[tuple[str, float]] = []
    gate = asyncio.Event()

    async def tell(tenant_id: str) -> None:
        runs.append((tenant_id, clock.now))
        await gate.wait()

    notices = QueueNotices(tell, interval=0.25, sleep=clock.sleep)
    try:
        for _ in range(50):
            notices.changed("t1")  # a burst: the first runs at once ...
        notices.changed("t2")
        await until(lambda: len(runs) == 2)
        assert sorted(runs) == [("t1", 1000.0), ("t2", 1000.0)]
        for _ in range(50):
            notices.changed("t1")  # ... the rest, during the run and the interval, make one more
        gate.set()
        await until(lambda: clock.pending() == 2)  # both asleep for their interval
        clock.advance(0.2)
        await asyncio.sleep(0)
        assert len(runs) == 2  # never before the interval has passed
        clock.advance(0.05)
        await until(lambda: len(runs) == 3)
        assert runs[2] == ("t1", 1000.25)
        clock.advance(0.25)  # quiet since: no more runs
        await until(lambda: clock.pending() == 0)
        assert len(runs) == 3 and notices.runs == 3
        notices.changed("t2")  # a quiet tenant is told at once again
        await until(lambda: len(runs) == 4)
    finally:
        await notices.close()


class Recorder(MemoryBroker):
    """The in-process broker, keeping what was published."""

    def __init__(self) -> None:
        super().__init__(MemoryHub(), "a")
        self.sent: list[tuple[str, Envelope]] = []

    async def publish(self, channel: str, envelope: Envelope) -> None:
        self.sent.append((channel, envelope))
        await super().publish(channel, envelope)

    async def publish_many(self, items: Sequence[tuple[str, Envelope]]) -> None:
        self.sent.extend(items)
        await super().publish_many(items)


@dataclass
class Desk:
    store: SqliteStore
    broker: Recorder
    clock: ManualClock
    chat: ChatService
    presence: PresenceTracker
    tenant_id: str
    agent: AgentPrincipal

    async def visitor(self, name: str) -> tuple[VisitorPrincipal, str]:
        """A visitor who starts a conversation, a second after the last: (principal, conversation id)."""
        self.clock.advance(1)
        c = await self.store.create_contact(tenant_id=self.tenant_id, name=name, email=None, now=self.clock.now)
        p = VisitorPrincipal(tenant_id=self.tenant_id, visitor_id=f"v-{name}", contact_id=c.id)
        return p, (await self.chat.start_conversation(p)).conversation.id

    def told(self, conv_id: str) -> list[dict[str, Any]]:
        """The `conversation:availability` events sent to the conversation's watchers."""
        ch = conv_channel(self.tenant_id, conv_id)
        return [dict(e.data) for c, e in self.broker.sent
                if c == ch and e.extra.get("event") == "conversation:availability"]

    async def told_until(self, conv_id: str, agents: str, place: int | None) -> None:
        """The last event to the conversation says (`agents`, `place`); each recompute's
        interval is let pass on the manual clock meanwhile."""
        want = {"conversation_id": conv_id, "agents": agents, "queue_position": place}

        def last_is() -> bool:
            got = self.told(conv_id)
            if got and got[-1] == want:
                return True
            self.clock.advance(0.25)  # the interval of a recompute asleep (no wall-clock window)
            return False

        await until(last_is)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    store = SqliteStore(str(tmp_path / "q.sqlite3"))
    await store.open()
    await store.migrate()
    broker = Recorder()
    await broker.start(_ignore)
    clock = ManualClock()
    chat = ChatService(store, broker, node_id="a", limits=LimitsConfig(), clock=clock, presence_ttl=TTL,
                       sleep=clock.sleep)
    presence = PresenceTracker(store, "a", clock, interval=3600, ttl=TTL, announce=chat.announce_presence)
    tenant = await store.create_tenant(name="Shop", widget_key="wk", identity_secret="s" * 32, now=clock.now)
    x = await store.create_agent(tenant_id=tenant.id, name="Xuân", role=AgentRole.AGENT, token_hash="h",
                                 capacity=1, now=clock.now)
    await store.set_agent_status(tenant.id, x.id, AgentStatus.ONLINE)
    try:
        yield Desk(store, broker, clock, chat, presence, tenant.id,
                   AgentPrincipal(tenant_id=tenant.id, agent_id=x.id, role=AgentRole.AGENT, name="Xuân"))
    finally:
        await presence.stop()
        await chat.close()
        await broker.close()
        await store.close()


async def test_places_move_as_the_queue_is_assigned(desk: Desk) -> None:
    """X (capacity 1) is full; two visitors wait, 1st and 2nd. X resolves their conversation:
    the first waiting one is assigned to X and the second is told it is now 1st."""
    await desk.presence.add(desk.agent.agent_id)
    _, c0 = await desk.visitor("An")
    _, c1 = await desk.visitor("Bình")
    v2, c2 = await desk.visitor("Chi")
    assert (await desk.store.get_conversation(desk.tenant_id, c0)).assignee_id == desk.agent.agent_id
    assert (await desk.chat.availability(v2, c2)).to_dict() == {"agents": "busy", "queue_position": 2}
    await desk.chat.update_conversation(desk.agent, c0, status=ConversationStatus.RESOLVED, assignee_id=None,
                                        unassign=False)
    assert (await desk.store.get_conversation(desk.tenant_id, c1)).assignee_id == desk.agent.agent_id
    await desk.told_until(c2, "busy", 1)
    # resolving a waiting conversation moves the ones after it too
    v3, c3 = await desk.visitor("Dung")
    assert (await desk.chat.availability(v3, c3)).to_dict() == {"agents": "busy", "queue_position": 2}
    await desk.chat.update_conversation(desk.agent, c2, status=ConversationStatus.RESOLVED, assignee_id=None,
                                        unassign=False)
    await desk.told_until(c3, "busy", 1)


async def test_no_agent_online_becomes_busy_when_a_full_agent_connects_and_back_after_the_ttl(desk: Desk) -> None:
    """X connects and takes a conversation (full), then leaves; a new visitor is told "no
    agent online". X connecting again (after PRESENCE_TTL, so announced) moves them to "busy",
    1st; X leaving again moves them back to "no agent online" once PRESENCE_TTL has passed,
    not before (a reload of the console does not flicker)."""
    x = desk.agent.agent_id
    await desk.presence.add(x)
    _, c0 = await desk.visitor("An")
    assert (await desk.store.get_conversation(desk.tenant_id, c0)).assignee_id == x
    await desk.presence.remove(x)
    desk.clock.advance(TTL + 1)
    assert [a.id for a in await desk.presence.expire()] == [x]
    v1, c1 = await desk.visitor("Bình")
    assert (await desk.chat.availability(v1, c1)).to_dict() == {"agents": "none", "queue_position": None}

    await desk.presence.add(x)  # present again: announced, and the queue is told
    await desk.told_until(c1, "busy", 1)

    await desk.presence.remove(x)
    n = len(desk.told(c1))
    desk.clock.advance(TTL - 1)
    assert await desk.presence.expire() == []
    assert len(desk.told(c1)) == n  # not yet: still "busy" within PRESENCE_TTL
    desk.clock.advance(2)
    assert [a.id for a in await desk.presence.expire()] == [x]
    await desk.told_until(c1, "none", None)


async def test_an_agent_going_away_or_online_tells_the_queue(desk: Desk) -> None:
    x = desk.agent.agent_id
    await desk.presence.add(x)
    await desk.visitor("An")  # X is full
    _, c1 = await desk.visitor("Bình")
    await desk.chat.set_presence(desk.agent, AgentStatus.AWAY)
    await desk.told_until(c1, "none", None)
    await desk.chat.set_presence(desk.agent, AgentStatus.ONLINE)
    await desk.told_until(c1, "busy", 1)


async def test_only_the_first_waiting_conversations_are_told(desk: Desk, tmp_path: Path) -> None:
    """Bounded work: a recompute tells the first `queue_told` waiting conversations only."""
    chat = ChatService(desk.store, desk.broker, node_id="a", limits=LimitsConfig(), clock=desk.clock,
                       presence_ttl=TTL, sleep=desk.clock.sleep, queue_told=3)
    try:
        convs = [(await desk.visitor(f"v{i}"))[1] for i in range(5)]
        assert await chat.tell_queue(desk.tenant_id) == 3
        assert [len(desk.told(c)) for c in convs][3:] == [0, 0]
    finally:
        await chat.close()


async def _ignore(channel: str, env: object) -> None:
    return None
