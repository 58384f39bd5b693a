"""Node-local fan-out: which local connections listen to which broker channel.

A node subscribes the broker only to channels with local listeners. Per conversation
it remembers the last `seq` delivered; every watching connection has received exactly
the messages up to that `seq` (a watch replays the missing ones under the route's lock,
and a delivery goes to every watcher under the same lock), so each connection sees every
message exactly once, in `seq` order: a jump in `seq` (a lost or reordered envelope) is
repaired from the store before delivering, and a message already delivered is dropped.

The per-message conversation summary (`conversation:updated` with `last_message`, sent
to every agent of the tenant) is coalesced per conversation on each node: the first is
delivered at once, later ones within `summary_interval` are held and only the newest
(highest `last_seq`) is delivered when the interval ends. The windows all have the same
length, so they end in the order they opened: they wait in one queue under one timer,
not a timer each (one timer handle whatever the number of open windows).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.aio.tasks import TaskSet
from gateway.aio.timers import Cancellable, Timers
from gateway.broker import Broker, Envelope, conv_channel, tenant_channel
from gateway.chat.service import contact_channel
from gateway.chat.wire import hidden_note, is_note, message_dict, visitor_message_dict
from gateway.core.domain import Conversation, Message
from gateway.realtime.context import Conn, Emitter

log = logging.getLogger(__name__)

EVENT_NAMES: dict[str, str] = {
    "message": "message:new",
    "message_updated": "message:updated",
    "typing": "typing",
    "read": "read",
    "conversation": "conversation:updated",
    "conversation_created": "conversation:created",
    "presence": "agent:presence",
}

FetchMessages = Callable[[str, str, int, int], Awaitable[list[Message]]]
"""(tenant_id, conversation_id, after_seq, limit) -> messages ascending."""
GetConversation = Callable[[str, str], Awaitable[Conversation]]


@dataclass(eq=False)
class ConvRoute:
    tenant_id: str
    conversation_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    epoch: str = ""
    last_seq: int = 0
    # every watcher has got exactly the messages up to `last_seq` (kept under `lock`)
    watchers: dict[Conn, None] = field(default_factory=dict)
    closed: bool = False


@dataclass(eq=False, slots=True)
class _HeldSummary:
    """A conversation's summary window on one tenant channel: when it ends (on `timers`) and
    the newest summary held back."""

    ends: float
    env: Envelope | None = None


class ResetRequired(Exception):
    """The client's epoch differs or its gap is too large: it must reload."""


class Fanout:
    def __init__(
        self,
        broker: Broker,
        emitter: Emitter,
        fetch_messages: FetchMessages,
        get_conversation: GetConversation,
        *,
        max_gap: int,
        tail: int = 50,
        summary_interval: float = 0.25,
        timers: Timers | None = None,
    ) -> None:
        """`timers`: the clock and timer the summary windows run on (the running event loop
        when None)."""
        self._broker = broker
        self._emitter = emitter
        self._fetch = fetch_messages
        self._get_conv = get_conversation
        self._max_gap = max_gap
        self._tail = tail
        self._convs: dict[str, ConvRoute] = {}
        self._groups: dict[str, set[Conn]] = {}  # tenant:/contact: channels -> conns
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._summary_interval = summary_interval
        self._timers = timers
        self._held: dict[tuple[str, str], _HeldSummary] = {}  # (channel, conversation id) -> window
        self._ends: deque[tuple[float, tuple[str, str]]] = deque()  # windows by end, oldest first
        self._tick: Cancellable | None = None  # at the end of the oldest window
        self._tasks = TaskSet()
        self.delivered = 0
        self.summaries_coalesced = 0
        self.gaps_repaired = 0

    # --- membership -----------------------------------------------------
    async def join_group(self, conn: Conn, channel: str) -> None:
        lock = self._group_locks.setdefault(channel, asyncio.Lock())
        async with lock:
            members = self._groups.get(channel)
            if members is None:
                await self._broker.subscribe(channel)
                members = self._groups[channel] = set()
            members.add(conn)

    async def leave_group(self, conn: Conn, channel: str) -> None:
        lock = self._group_locks.setdefault(channel, asyncio.Lock())
        async with lock:
            members = self._groups.get(channel)
            if members is None:
                return
            members.discard(conn)
            if not members:
                del self._groups[channel]
                self._group_locks.pop(channel, None)
                await self._safe_unsubscribe(channel)

    async def watch(self, conn: Conn, conversation_id: str, after_seq: int | None, epoch: str | None,
                    known: Conversation | None = None) -> int:
        """Start delivering the conversation to `conn`.

        Missing messages (after `after_seq`, or the latest page when it is None) are sent
        to `conn` as `message:new` before any later message, in order. Returns how many
        were replayed. Raises ResetRequired when `epoch` is stale or the gap too large.
        `known`: the conversation as the caller has just read it (an access check); a route
        made here starts from it instead of reading the conversation again, and catches up
        from the store (after subscribing) whatever was appended since that read.
        """
        return (await self.watch_read(conn, conversation_id, after_seq, epoch, known))[0]

    async def watch_read(self, conn: Conn, conversation_id: str, after_seq: int | None, epoch: str | None,
                         known: Conversation | None = None) -> tuple[int, Conversation | None]:
        """`watch`, also answering the conversation when this call read it: a route made here
        without `known` reads it once subscribed, which needs no catch-up query (what is
        appended after that read comes through the channel). None when it was not read (the
        route was there, or `known` was given). The store's NotFound when the conversation
        does not exist (the route is then let go)."""
        route, read = await self._route(conn.tenant_id, conversation_id, known)
        async with route.lock:
            if read is None:
                await self._catch_up(route)
            if after_seq is not None:
                if epoch is not None and epoch != route.epoch:
                    raise ResetRequired("the conversation's epoch changed")
                if after_seq > route.last_seq:
                    raise ResetRequired("the client is ahead of the server")
                if route.last_seq - after_seq > self._max_gap:
                    raise ResetRequired("the gap is too large to replay")
                start = after_seq
            else:
                start = max(0, route.last_seq - self._tail)
            replayed = 0
            if route.last_seq > start:
                missing = await self._fetch(conn.tenant_id, conversation_id, start, route.last_seq - start)
                for m in missing:
                    if m.seq > route.last_seq:
                        break
                    data = message_dict(m, route.epoch) if conn.is_agent else visitor_message_dict(m, route.epoch)
                    await self._emitter.emit(conn, "message:new", data)
                    replayed += 1
            route.watchers[conn] = None
            conn.watching.add(conversation_id)
            return replayed, read

    async def unwatch(self, conn: Conn, conversation_id: str) -> None:
        conn.watching.discard(conversation_id)
        route = self._convs.get(conv_channel(conn.tenant_id, conversation_id))
        if route is None:
            return
        async with route.lock:
            route.watchers.pop(conn, None)
            if not route.watchers and not route.closed:
                route.closed = True
                self._convs.pop(conv_channel(route.tenant_id, route.conversation_id), None)
                await self._safe_unsubscribe(conv_channel(route.tenant_id, route.conversation_id))

    async def drop(self, conn: Conn, groups: Sequence[str]) -> None:
        for conv_id in list(conn.watching):
            await self.unwatch(conn, conv_id)
        for channel in groups:
            await self.leave_group(conn, channel)

    async def _route(self, tenant_id: str, conversation_id: str,
                     known: Conversation | None = None) -> tuple[ConvRoute, Conversation | None]:
        """The conversation's route, made (subscribed, then its state read or taken from
        `known`) when there is none; with the conversation when it was read here."""
        ch = conv_channel(tenant_id, conversation_id)
        if known is not None and (known.tenant_id, known.id) != (tenant_id, conversation_id):
            known = None
        while True:
            route = self._convs.get(ch)
            if route is None:
                route = ConvRoute(tenant_id, conversation_id)
                self._convs[ch] = route
                async with route.lock:
                    try:
                        await self._broker.subscribe(ch)
                        conv = known if known is not None else await self._get_conv(tenant_id, conversation_id)
                    except BaseException:
                        route.closed = True
                        self._convs.pop(ch, None)
                        await self._safe_unsubscribe(ch)
                        raise
                    route.epoch, route.last_seq = conv.epoch, conv.last_seq
                return route, (conv if known is None else None)
            if not route.closed:
                return route, None
            await asyncio.sleep(0)

    # --- broker side ----------------------------------------------------
    async def on_envelope(self, channel: str, env: Envelope) -> None:
        try:
            if channel.startswith("conv:"):
                await self._on_conv(channel, env)
            else:
                await self._on_group(channel, env)
        except Exception:
            log.exception("fan-out of %s on %s failed", env.kind, channel)

    @staticmethod
    def _event_name(env: Envelope) -> str | None:
        if env.kind == "event":
            name = env.extra.get("event")
            return name if isinstance(name, str) and name else None
        return EVENT_NAMES.get(env.kind)

    async def _on_group(self, channel: str, env: Envelope) -> None:
        if env.kind == "conversation" and env.conversation_id and self._summary_interval > 0:
            key = (channel, env.conversation_id)
            held = self._held.get(key)
            if env.extra.get("summary"):
                if held is not None:  # inside the window: keep only the newest
                    if held.env is None or _last_seq(env) >= _last_seq(held.env):
                        if held.env is not None:
                            self.summaries_coalesced += 1
                        held.env = env
                    else:
                        self.summaries_coalesced += 1
                    return
                self._open_window(key)
                self._arm()
            elif held is not None and held.env is not None:
                # a status change overtakes a held summary: deliver the summary first
                pending, held.env = held.env, None
                await self._send_group(channel, pending)
        await self._send_group(channel, env)

    def _clock(self) -> Timers:
        return self._timers if self._timers is not None else asyncio.get_running_loop()

    def _open_window(self, key: tuple[str, str]) -> None:
        ends = self._clock().time() + self._summary_interval
        held = self._held.get(key)
        if held is None:
            self._held[key] = _HeldSummary(ends)
        else:
            held.ends = ends
        self._ends.append((ends, key))

    def _arm(self) -> None:
        if self._tick is None and self._ends:
            self._tick = self._clock().call_at(self._ends[0][0], self._windows_due)

    def _windows_due(self) -> None:
        """End the windows that are due: a window that held a summary delivers it and the
        next window starts; one that held nothing ends."""
        self._tick = None
        now = self._clock().time() + 0.001  # the timer's resolution: never spin on it
        q = self._ends
        while q and q[0][0] <= now:
            ends, key = q.popleft()
            held = self._held.get(key)
            if held is None or held.ends != ends:
                continue
            if held.env is None:
                del self._held[key]
                continue
            env, held.env = held.env, None
            self._open_window(key)
            self._tasks.spawn(self._send_group_safe(key[0], env))
        self._arm()

    async def _send_group_safe(self, channel: str, env: Envelope) -> None:
        try:
            await self._send_group(channel, env)
        except Exception:
            log.exception("fan-out of a conversation summary on %s failed", channel)

    async def _send_group(self, channel: str, env: Envelope) -> None:
        members = self._groups.get(channel)
        event = self._event_name(env)
        if not members or event is None:
            return
        agents = [c for c in members if c.is_agent and c.sid != env.sid]
        visitors = [c for c in members if not c.is_agent and c.sid != env.sid]
        if agents:
            await self._emitter.emit_many(agents, event, env.data)
        if visitors:
            await self._emitter.emit_many(visitors, event, env.extra.get("visitor", env.data))

    async def _on_conv(self, channel: str, env: Envelope) -> None:
        route = self._convs.get(channel)
        if route is None:
            return
        if env.kind == "message" and env.seq is not None:
            async with route.lock:
                if route.closed:
                    return
                if env.epoch and env.epoch != route.epoch:
                    log.warning("epoch of %s changed; clients will be told to reload", channel)
                    return
                if env.seq <= route.last_seq:
                    return
                if env.seq > route.last_seq + 1:
                    await self._catch_up(route, upto=env.seq - 1)
                    if env.seq <= route.last_seq:
                        return
                await self._deliver(route, env.seq, env.data)
            return
        event = self._event_name(env)
        if event is None:
            return
        targets = [c for c in route.watchers if c.sid != env.sid]
        if env.kind == "conversation" or env.extra.get("agents_via_tenant") or env.extra.get("visitors_only"):
            # agents get these from their tenant channel, or not at all (a visitor's queue place)
            targets = [c for c in targets if not c.is_agent]
        if not targets:
            return
        agents = [c for c in targets if c.is_agent]
        visitors = [c for c in targets if not c.is_agent]
        if agents:
            await self._emitter.emit_many(agents, event, env.data)
        if visitors:
            await self._emitter.emit_many(visitors, event, env.extra.get("visitor", env.data))

    async def _deliver(self, route: ConvRoute, seq: int, data: dict[str, Any]) -> None:
        # seq == route.last_seq + 1 and every watcher is at route.last_seq: all get it
        watchers = route.watchers
        if watchers and is_note(data):  # a private note: visitors get its place only
            agents = [c for c in watchers if c.is_agent]
            visitors = [c for c in watchers if not c.is_agent]
            if agents:
                await self._emitter.emit_many(agents, "message:new", data)
            if visitors:
                await self._emitter.emit_many(visitors, "message:new", hidden_note(data))
            self.delivered += len(watchers)
        elif watchers:
            await self._emitter.emit_many(list(watchers), "message:new", data)
            self.delivered += len(watchers)
        route.last_seq = seq

    async def _catch_up(self, route: ConvRoute, upto: int | None = None) -> None:
        """Deliver from the store what the route has not seen yet (caller holds the lock)."""
        while True:
            limit = 500 if upto is None else max(1, min(500, upto - route.last_seq))
            rows = await self._fetch(route.tenant_id, route.conversation_id, route.last_seq, limit)
            rows = [m for m in rows if upto is None or m.seq <= upto]
            if not rows:
                return
            self.gaps_repaired += 1
            for m in rows:
                if m.seq != route.last_seq + 1:
                    log.error("store returned seq %d after %d for %s", m.seq, route.last_seq,
                              route.conversation_id)
                    return
                await self._deliver(route, m.seq, message_dict(m, route.epoch))
            if len(rows) < limit:
                return

    async def resync(self) -> None:
        """After a broker reconnect: anything may have been lost, catch every route up."""
        for route in list(self._convs.values()):
            async with route.lock:
                if not route.closed:
                    try:
                        await self._catch_up(route)
                    except Exception:
                        log.exception("resync of %s failed", route.conversation_id)

    def close(self) -> None:
        """Stop the summary timers (held summaries are dropped: clients reload their lists)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._held.clear()
        self._ends.clear()
        self._tasks.cancel()

    async def _safe_unsubscribe(self, channel: str) -> None:
        try:
            await self._broker.unsubscribe(channel)
        except Exception:
            log.warning("unsubscribe %s failed", channel, exc_info=True)

    # --- introspection --------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {
            "conversations": len(self._convs),
            "groups": len(self._groups),
            "watchers": sum(len(r.watchers) for r in self._convs.values()),
            "delivered": self.delivered,
            "gaps_repaired": self.gaps_repaired,
            "summaries_coalesced": self.summaries_coalesced,
            "summary_windows": len(self._held),
        }


def _last_seq(env: Envelope) -> int:
    seq = env.data.get("last_seq")
    return seq if isinstance(seq, int) else 0


def agent_groups(tenant_id: str) -> list[str]:
    return [tenant_channel(tenant_id)]


def visitor_groups(tenant_id: str, contact_id: str) -> list[str]:
    return [contact_channel(tenant_id, contact_id)]
