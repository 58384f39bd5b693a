"""Chat use cases: start, post (idempotent, ordered), history, read, typing, assign, status.

Every method takes the acting principal and checks that the conversation belongs to its
tenant (and, for a visitor, to its contact); a conversation of anyone else is reported as
not found. Writes go to the store first, then an envelope is handed to the broker, which
never waits for Redis (best effort: a lost envelope is repaired by the receivers' gap
detection). So a reply or an ack waits for the durable write only, never for the publish.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.aio.lru import LruCache
from gateway.broker import Broker, Envelope, conv_channel, tenant_channel
from gateway.chat.appender import GroupAppender
from gateway.chat.principals import AgentPrincipal, Principal, VisitorPrincipal
from gateway.chat.queue import QueueNotices
from gateway.chat.wire import (
    agent_dict,
    contact_dict,
    conversation_dict,
    last_message_dict,
    message_dict,
    visitor_conversation_dict,
)
from gateway.config import LimitsConfig
from gateway.core.domain import (
    Agent,
    AgentStatus,
    AuthorType,
    Channel,
    Conversation,
    ConversationFilter,
    ConversationStatus,
    DeliveryState,
    Message,
    NewMessage,
)
from gateway.core.errors import Code, GatewayError, not_found
from gateway.core.hooks import Hooks
from gateway.core.records import record
from gateway.store import AppendRequest, AppendResult, NotFound, Store

log = logging.getLogger(__name__)


def contact_channel(tenant_id: str, contact_id: str) -> str:
    return f"contact:{tenant_id}:{contact_id}"


@record
class PostResult:
    message: Message
    conversation: Conversation
    created: bool
    # the message as clients see it (`message_dict`), as published: the ack reuses it
    wire: dict[str, Any] = field(compare=False)


MessageListener = Callable[[Message, Conversation], Awaitable[None]]
SendCheck = Callable[[Principal, str, str], Awaitable[DeliveryState | None]]
"""(author, tenant_id, conversation_id) of a message about to be stored: raises a
GatewayError to refuse it (nothing is stored); a feature's rule, e.g. no reply to an erased
contact (connectors). It may return the delivery state the message is stored with (the
first check that returns one decides; e.g. `pending` for a reply the connectors' outbox
will deliver), so the ack, the REST 201 and `message:new` already carry it; None: no say
(the message is stored `none`)."""
"""Called after a new message is stored and handed to the broker (e.g. the connectors' outbox)."""

ContactListener = Callable[[str, str, str, list[str]], Awaitable[None]]
"""Called after an agent corrected a contact: (tenant id, contact id, actor `agent:<id>`,
names of the changed fields); e.g. the privacy audit."""

AttachmentResolver = Callable[[Principal, Conversation, list[str]], Awaitable[list[dict[str, Any]]]]
"""Checks upload ids (the sender's own, same tenant) and returns the attachment dicts."""


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """A stored message attachment as a channel can take it: a link that works without
    credentials for a while (absolute when PUBLIC_URL is set) and its bytes, read from the
    blob store when called (the typed `unavailable` error when the store is down)."""

    url: str
    read: Callable[[], Awaitable[bytes]]
    name: str
    mime_type: str
    size: int


AttachmentExporter = Callable[[str, dict[str, Any]], Awaitable[ExportedFile | None]]
"""(tenant id, a stored message's attachment dict) → the file, or None when it is gone."""

AttachmentKeeper = Callable[[str, str, str | None, str, bytes], Awaitable[dict[str, Any]]]
"""(tenant id, source such as `email:<channel id>`, file name, MIME type, bytes) of a file a
channel received → the stored file's attachment dict (`id`, `kind`, `name`, `mime_type`,
`size`, `url`), served by the one authenticated download route like an upload; bound to the
conversation of the first message stored with it. The typed `unavailable` error when the
blob store is down."""


@dataclass(frozen=True, slots=True, eq=False)
class Attachments:
    """A feature keeping message attachments (the widget's uploads): `resolve` turns the
    upload ids of a `message:send` into attachment dicts, `export` hands a stored one to a
    channel, `keep` stores a file a channel received."""

    resolve: AttachmentResolver
    export: AttachmentExporter
    keep: AttachmentKeeper


@dataclass(frozen=True, slots=True, eq=False)
class ChatHooks:
    """What features add to chat (declared in their `Extension`, composed and frozen by
    `build_gateway`): listeners run after a new message is stored and published, checks
    before it is stored, contact listeners after an agent corrected a contact, and at most
    one attachment keeper."""

    message_listeners: Hooks[MessageListener] = field(default_factory=Hooks)
    send_checks: Hooks[SendCheck] = field(default_factory=Hooks)
    contact_listeners: Hooks[ContactListener] = field(default_factory=Hooks)
    attachments: Hooks[Attachments] = field(default_factory=Hooks)

    def freeze(self) -> None:
        if len(self.attachments) > 1:
            raise ValueError("more than one feature keeps message attachments")
        for hooks in (self.message_listeners, self.send_checks, self.contact_listeners, self.attachments):
            hooks.freeze()


AVAILABLE, BUSY, NO_AGENT = "available", "busy", "none"
QUEUE_TOLD = 100  # waiting conversations of a tenant told their place per recompute (the first ones)


@record
class Availability:
    """What a visitor waiting in a conversation is told: `available` (it has an agent),
    `busy` (agents are online and connected but at capacity: `queue_position` is its place
    among the tenant's unassigned conversations) or `none` (no agent online)."""

    state: str
    queue_position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"agents": self.state, "queue_position": self.queue_position}


@record
class StartResult:
    conversation: Conversation
    agents_available: bool
    availability: Availability


def _new_message(p: Principal, client_id: str, text: str, attachments: Sequence[dict[str, Any]]) -> NewMessage:
    author_type, author_id = p.author
    return NewMessage(author_type=author_type, author_id=author_id, text=text, client_id=client_id,
                      attachments=tuple(attachments))


class ChatService:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        *,
        node_id: str,
        limits: LimitsConfig,
        clock: Callable[[], float],
        presence_ttl: float,
        hooks: ChatHooks | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        owner_cache_size: int = 100_000,
        queue_interval: float = 0.25,
        queue_told: int = QUEUE_TOLD,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """`hooks`: the features' listeners and checks (frozen by the assembly before the
        gateway starts); `on_batch`: told (messages, seconds) of each batch append;
        `queue_interval`, `queue_told`, `sleep`: how waiting visitors are told their place
        live (at most one recompute per tenant per `queue_interval` s on `sleep`'s clock,
        the first `queue_told` waiting conversations; see `tell_queue`)."""
        self.store = store
        self.broker = broker
        self.node_id = node_id
        self.limits = limits
        self.clock = clock
        self.presence_ttl = presence_ttl
        # sends to one conversation are group-committed (see GroupAppender)
        self.appender = GroupAppender(store, clock, on_batch=on_batch)
        self._owners: LruCache[tuple[str, str], str] = LruCache(owner_cache_size)  # (tenant, conv) → contact
        self.hooks = hooks or ChatHooks()
        self.message_listeners = self.hooks.message_listeners
        # run before a message is stored; a GatewayError refuses that message (its post's result)
        self.send_checks = self.hooks.send_checks
        self.contact_listeners = self.hooks.contact_listeners
        self.queue_told = queue_told
        self.queue_notices = QueueNotices(self.tell_queue, interval=queue_interval,
                                          **({} if sleep is None else {"sleep": sleep}))

    @property
    def attachments(self) -> Attachments | None:
        """The feature keeping attachments (upload ids of `message:send` → attachment dicts), if any."""
        return next(iter(self.hooks.attachments), None)

    # --- access ----------------------------------------------------------
    async def conversation_for(self, p: Principal, conversation_id: str) -> Conversation:
        try:
            conv = await self.store.get_conversation(p.tenant_id, conversation_id)
        except NotFound:
            raise not_found("conversation") from None
        self._owners.put((conv.tenant_id, conv.id), conv.contact_id)
        if isinstance(p, VisitorPrincipal) and conv.contact_id != p.contact_id:
            raise not_found("conversation")
        return conv

    async def check_access(self, p: Principal, conversation_id: str) -> None:
        """`conversation_for` without reading the conversation when its owner is known: a
        conversation's tenant and contact never change, so they are cached (LRU). A
        conversation deleted since is still refused, by the write that follows."""
        if not self.access_known(p, conversation_id):
            await self.conversation_for(p, conversation_id)

    def access_known(self, p: Principal, conversation_id: str) -> bool:
        """`check_access` from the cache alone: True when the conversation's owner is cached
        and `p` may use it; False when it is not cached (read it: `conversation_for`);
        raises not_found for a conversation of another contact."""
        owner = self._owners.get((p.tenant_id, conversation_id))
        if owner is None:
            return False
        if isinstance(p, VisitorPrincipal) and owner != p.contact_id:
            raise not_found("conversation")
        return True

    # --- visitor ---------------------------------------------------------
    async def start_conversation(self, p: VisitorPrincipal) -> StartResult:
        mine = await self.store.list_conversations(
            p.tenant_id,
            ConversationFilter(contact_id=p.contact_id, limit=self.limits.max_conversations_per_visitor + 1),
        )
        open_ = [c for c in mine if c.status != ConversationStatus.RESOLVED]
        if len(open_) >= self.limits.max_conversations_per_visitor:
            raise GatewayError(
                Code.LIMIT_REACHED,
                "too many open conversations",
                limit=self.limits.max_conversations_per_visitor,
            )
        conv = await self.store.create_conversation(
            tenant_id=p.tenant_id, channel=Channel.WIDGET, contact_id=p.contact_id, now=self.clock()
        )
        # its owner is known: the visitor's first message need not read the conversation back
        self._owners.put((conv.tenant_id, conv.id), conv.contact_id)
        assigned = await self.try_assign(conv)
        conv = assigned or conv
        await self._publish_conversation(conv, created=True)
        return StartResult(conv, agents_available=assigned is not None, availability=await self._availability(conv))

    async def availability(self, p: VisitorPrincipal, conversation_id: str) -> Availability:
        """`Availability` of the visitor's conversation (raise not_found)."""
        return await self._availability(await self.conversation_for(p, conversation_id))

    async def _availability(self, conv: Conversation) -> Availability:
        if conv.assignee_id is not None or conv.status != ConversationStatus.OPEN:
            return Availability(AVAILABLE)
        if not await self.available_agents(conv.tenant_id):
            return Availability(NO_AGENT)
        try:
            return Availability(BUSY, await self.store.queue_position(conv.tenant_id, conv.id))
        except NotFound:
            raise not_found("conversation") from None

    async def available_agents(self, tenant_id: str) -> set[str]:
        """The tenant's agents who chose `online` and are connected to some node now: those
        routing and calls count on."""
        connected = await self.store.connected_agents(tenant_id, self.clock() - self.presence_ttl)
        if not connected:
            return set()
        return {a.id for a in await self.store.list_agents(tenant_id)
                if a.id in connected and a.status == AgentStatus.ONLINE}

    async def list_visitor_conversations(self, p: VisitorPrincipal) -> list[Conversation]:
        """The visitor's conversations (newest first, at most 100); their owners are cached,
        so that the `resume` which follows a `session` checks access without a read."""
        convs = await self.store.list_conversations(
            p.tenant_id, ConversationFilter(contact_id=p.contact_id, limit=100)
        )
        for conv in convs:
            self._owners.put((conv.tenant_id, conv.id), conv.contact_id)
        return convs

    # --- messages --------------------------------------------------------
    async def post_message(self, p: Principal, conversation_id: str, client_id: str, text: str,
                           attachment_ids: Sequence[str] = ()) -> PostResult:
        attachments: list[dict[str, Any]] = []
        if attachment_ids:
            keeper = self.attachments
            if keeper is None:
                raise GatewayError(Code.BAD_REQUEST, "attachments are not supported", field="attachments")
            conv = await self.conversation_for(p, conversation_id)
            attachments = await keeper.resolve(p, conv, list(attachment_ids))
        else:
            await self.check_access(p, conversation_id)
        rq = AppendRequest(p.tenant_id, conversation_id, _new_message(p, client_id, text, attachments))
        (out,) = await self.post_messages([(p, rq)])
        if isinstance(out, Exception):
            raise out
        return out

    async def post_note(self, p: AgentPrincipal, conversation_id: str, client_id: str, text: str) -> PostResult:
        """Store and publish an agent's private note: a message of author type `note` in
        the conversation's stream. The send checks do not apply (nothing leaves for a
        channel: the connectors' outbox takes agent messages only); visitors get its place
        only (`wire.hidden_note`), never its content."""
        await self.check_access(p, conversation_id)
        msg = NewMessage(author_type=AuthorType.NOTE, author_id=p.agent_id, text=text, client_id=client_id)
        (out,) = await self.post_messages([(p, AppendRequest(p.tenant_id, conversation_id, msg))])
        if isinstance(out, Exception):
            raise out
        return out

    def quick_post(self, p: Principal, conversation_id: str, client_id: str, text: str) -> AppendRequest | None:
        """For `post_messages`: the append request of a text message to a conversation whose
        owner is known (cached, see `check_access`), so that nothing has to be read first;
        None when it is not known (`post_message` reads it). Raises not_found for a
        conversation of another contact."""
        if not self.access_known(p, conversation_id):
            return None
        return AppendRequest(p.tenant_id, conversation_id, _new_message(p, client_id, text, ()))

    async def _checked(self, posts: Sequence[tuple[Principal, AppendRequest]]
                       ) -> tuple[list[AppendRequest], dict[int, GatewayError]]:
        """Each post's append request, with the delivery state a send check gave it; and the
        posts a send check refuses (index → its error)."""
        refused: dict[int, GatewayError] = {}
        requests: list[AppendRequest] = []
        for k, (p, rq) in enumerate(posts):
            if rq.message.author_type == AuthorType.NOTE:  # no channel, no delivery
                requests.append(rq)
                continue
            state: DeliveryState | None = None
            try:
                for check in self.send_checks:
                    said = await check(p, rq.tenant_id, rq.conversation_id)
                    state = state or said
            except GatewayError as exc:
                refused[k] = exc
            if state is not None and state != rq.message.delivery_state:
                rq = replace(rq, message=replace(rq.message, delivery_state=state))
            requests.append(rq)
        return requests, refused

    async def post_messages(self, posts: Sequence[tuple[Principal, AppendRequest]]) -> list[PostResult | Exception]:
        """Store each post's message (group-committed with whatever else is queued, in this
        order), hand them all to the broker with one call (which does not wait for Redis:
        this node's watchers get them at once, the other nodes when Redis takes them), run
        the message listeners: per post its result, or the error it alone met (not_found
        when its conversation is not its tenant's). Access must have been checked
        (`check_access`, `quick_post`). A cancelled caller's messages may still be stored;
        their retries with the same client ids return them."""
        requests, refused = await self._checked(posts) if self.send_checks else ([rq for _, rq in posts], {})
        futures = [None if k in refused else self.appender.enqueue(rq) for k, rq in enumerate(requests)]
        stored: list[AppendResult | Exception] = []
        try:
            for k, fut in enumerate(futures):  # the first wait is the batch's; the rest are usually done by then
                if fut is None:
                    stored.append(refused[k])
                    continue
                try:
                    res = await fut
                except Exception as exc:
                    stored.append(exc)
                    continue
                stored.append(res if res is not None else not_found("conversation"))
        except BaseException:
            for fut in futures:
                if fut is not None:
                    fut.cancel()
            raise
        out: list[PostResult | Exception] = []
        envelopes: list[tuple[str, Envelope]] = []
        for (p, _), got in zip(posts, stored, strict=True):
            if isinstance(got, Exception):
                out.append(got)
                continue
            conv = got.conversation
            if got.created and isinstance(p, VisitorPrincipal) and conv.status == ConversationStatus.RESOLVED:
                try:
                    conv = await self._reopen(p, conv)
                except Exception as exc:
                    out.append(exc)
                    continue
            # Published also for a duplicate: the first attempt may have died before publishing,
            # and receivers drop what they have already delivered.
            wire, mine = self._message_envelopes(got.message, conv)
            envelopes += mine
            out.append(PostResult(got.message, conv, got.created, wire))
        await self._publish_all(envelopes)
        for k, r in enumerate(out):
            if isinstance(r, PostResult) and r.created:
                try:
                    for listener in self.message_listeners:
                        await listener(r.message, r.conversation)
                except Exception as exc:
                    out[k] = exc
        return out

    async def post_system(self, tenant_id: str, conversation_id: str, text: str, *, client_id: str) -> PostResult:
        """A system entry (author type `system`, no author) in the conversation's stream,
        e.g. the calls feature's record of a call: stored in seq order (group-committed),
        published and given to the message listeners like any message; no send check runs
        (no principal sends it). `client_id` (a UUID) makes it idempotent: a repeat returns
        the first entry (`created` False) and publishes it again. not_found when the
        conversation is not the tenant's."""
        got = await self.appender.append(tenant_id, conversation_id, NewMessage(
            author_type=AuthorType.SYSTEM, author_id=None, text=text, client_id=client_id))
        wire, envelopes = self._message_envelopes(got.message, got.conversation)
        await self._publish_all(envelopes)
        if got.created:
            for listener in self.message_listeners:
                await listener(got.message, got.conversation)
        return PostResult(got.message, got.conversation, got.created, wire)

    async def _reopen(self, p: VisitorPrincipal, conv: Conversation) -> Conversation:
        """A visitor wrote into a resolved conversation: it is open again (and assigned)."""
        conv = await self.store.update_conversation(p.tenant_id, conv.id, now=self.clock(),
                                                    status=ConversationStatus.OPEN)
        conv = await self.try_assign(conv) or conv
        await self._publish_conversation(conv)
        if _waiting(conv):
            self.queue_notices.changed(p.tenant_id)  # back in the queue, by its creation time
        return conv

    async def publish_message(self, m: Message, conv: Conversation, *, kind: str = "message") -> None:
        """Publish `m` to its conversation's watchers and its summary to the tenant's agents."""
        await self._publish_all(self._message_envelopes(m, conv, kind)[1])

    def _message_envelopes(self, m: Message, conv: Conversation, kind: str = "message"
                           ) -> tuple[dict[str, Any], list[tuple[str, Envelope]]]:
        """The message as clients see it, and what publishes it: the envelope to its
        conversation's channel and the conversation's summary to its tenant's."""
        data = message_dict(m, conv.epoch)
        summary = conversation_dict(conv)
        summary["last_message"] = last_message_dict(m)
        return data, [
            (conv_channel(conv.tenant_id, conv.id),
             Envelope(kind=kind, tenant_id=conv.tenant_id, conversation_id=conv.id,
                      seq=m.seq if kind == "message" else None, epoch=conv.epoch, data=data, origin=self.node_id)),
            # "summary": receiving nodes coalesce these per conversation (see Fanout)
            (tenant_channel(conv.tenant_id),
             Envelope(kind="conversation", tenant_id=conv.tenant_id, conversation_id=conv.id,
                      data=summary, origin=self.node_id, extra={"summary": True})),
        ]

    async def history(
        self, p: Principal, conversation_id: str, *, before_seq: int | None, after_seq: int, limit: int
    ) -> tuple[Conversation, list[Message]]:
        conv = await self.conversation_for(p, conversation_id)
        limit = max(1, min(limit, self.limits.history_page_max))
        msgs = await self.store.get_messages(
            p.tenant_id, conv.id, after_seq=after_seq, before_seq=before_seq, limit=limit,
            newest=before_seq is not None or after_seq == 0,
        )
        return conv, msgs

    async def mark_read(self, p: Principal, conversation_id: str, seq: int) -> int:
        conv = await self.conversation_for(p, conversation_id)
        stored = await self.store.set_read(p.tenant_id, conv.id, p.participant, seq)
        author_type, author_id = p.author
        await self._publish(
            conv_channel(conv.tenant_id, conv.id),
            Envelope(
                kind="read",
                tenant_id=conv.tenant_id,
                conversation_id=conv.id,
                data={"conversation_id": conv.id, "reader": {"type": author_type.value, "id": author_id},
                      "seq": stored},
                origin=self.node_id,
            ),
        )
        return stored

    async def typing(self, p: Principal, conversation_id: str, typing: bool, sid: str | None) -> None:
        conv = await self.conversation_for(p, conversation_id)
        author_type, author_id = p.author
        await self._publish(
            conv_channel(conv.tenant_id, conv.id),
            Envelope(
                kind="typing",
                tenant_id=conv.tenant_id,
                conversation_id=conv.id,
                data={"conversation_id": conv.id, "author": {"type": author_type.value, "id": author_id},
                      "typing": typing},
                origin=self.node_id,
                sid=sid,
            ),
        )

    # --- agents ----------------------------------------------------------
    async def list_conversations(self, p: AgentPrincipal, flt: ConversationFilter) -> dict[str, Any]:
        """The page of the agent's list: `conversations` (each with the agent's `unread`
        count and `last_message`, null when it has none) and `contacts`, each contact of
        those conversations once: three reads whatever the page's size."""
        convs = await self.store.list_conversations(p.tenant_id, flt)
        ids = [c.id for c in convs]
        reads = await self.store.get_read_positions(p.tenant_id, p.participant, ids)
        last = await self.store.get_last_messages(p.tenant_id, ids)
        contacts = await self.store.get_contacts(p.tenant_id, [c.contact_id for c in convs])
        out = []
        for c in convs:
            d = conversation_dict(c, unread=max(0, c.last_seq - reads.get(c.id, 0)))
            m = last.get(c.id)
            d["last_message"] = None if m is None else last_message_dict(m)
            out.append(d)
        return {"conversations": out, "contacts": [contact_dict(contacts[k]) for k in sorted(contacts)]}

    async def update_conversation(
        self,
        p: AgentPrincipal,
        conversation_id: str,
        *,
        status: ConversationStatus | None,
        assignee_id: str | None,
        unassign: bool,
    ) -> Conversation:
        conv = await self.conversation_for(p, conversation_id)
        if assignee_id is not None:
            try:
                await self.store.get_agent(p.tenant_id, assignee_id)
            except NotFound:
                raise not_found("agent") from None
        before = conv
        conv = await self.store.update_conversation(
            p.tenant_id, conv.id, now=self.clock(), status=status, assignee_id=assignee_id, unassign=unassign
        )
        await self._publish_conversation(conv)
        if _holds_room(before) and not _waiting(conv) and (
                not _holds_room(conv) or conv.assignee_id != before.assignee_id):
            # resolved, pending or given to another: its agent has room now (places are told).
            # Not when it was put back in the queue: it would be given straight back.
            await self.assign_queued(p.tenant_id)
        elif _waiting(before) or _waiting(conv):
            self.queue_notices.changed(p.tenant_id)
        return conv

    async def announce_presence(self, agents: Sequence[Agent]) -> None:
        """Publish `agent:presence` of each agent to its tenant's agents (their presence
        flipped: connected again, or gone for PRESENCE_TTL)."""
        await self._publish_all([
            (tenant_channel(a.tenant_id),
             Envelope(kind="presence", tenant_id=a.tenant_id, data=agent_dict(a), origin=self.node_id))
            for a in agents])
        for tenant_id in {a.tenant_id for a in agents}:
            self.queue_notices.changed(tenant_id)  # "no agent online" ↔ "busy"

    async def set_presence(self, p: AgentPrincipal, status: AgentStatus) -> None:
        agent = await self.store.set_agent_status(p.tenant_id, p.agent_id, status)
        await self._publish(
            tenant_channel(p.tenant_id),
            Envelope(kind="presence", tenant_id=p.tenant_id, data=agent_dict(agent), origin=self.node_id),
        )
        if status == AgentStatus.ONLINE:
            await self.assign_queued(p.tenant_id)
        else:
            self.queue_notices.changed(p.tenant_id)

    async def assign_queued(self, tenant_id: str) -> int:
        """Give waiting conversations to agents who have room; returns how many were
        assigned. The visitors still waiting are told their place (an agent came, or has
        room: the queue moved, or they are now told "busy" rather than "no agent online")."""
        n = 0
        try:
            for conv in await self.store.list_unassigned(tenant_id, limit=100):
                assigned = await self.try_assign(conv)
                if assigned is None:
                    break
                await self._publish_conversation(assigned)
                n += 1
        finally:
            self.queue_notices.changed(tenant_id)
        return n

    async def tell_queue(self, tenant_id: str) -> int:
        """Send `conversation:availability` (`{conversation_id, agents, queue_position}`,
        as `availability` answers) to the visitors watching each of the first `queue_told`
        waiting conversations of the tenant, oldest first; returns how many were told.
        Run through `queue_notices` (coalesced per tenant), not per change."""
        waiting = await self.store.list_unassigned(tenant_id, limit=self.queue_told)
        if not waiting:
            return 0
        state = BUSY if await self.available_agents(tenant_id) else NO_AGENT
        envelopes = []
        for place, conv in enumerate(waiting, start=1):
            told = Availability(state, place if state == BUSY else None)
            envelopes.append((conv_channel(tenant_id, conv.id), Envelope(
                kind="event", tenant_id=tenant_id, conversation_id=conv.id,
                data={"conversation_id": conv.id, **told.to_dict()}, origin=self.node_id,
                extra={"event": "conversation:availability", "visitors_only": True})))
        await self._publish_all(envelopes)
        return len(envelopes)

    async def try_assign(self, conv: Conversation) -> Conversation | None:
        now = self.clock()
        return await self.store.assign_next_agent(
            conv.tenant_id, conv.id, now=now, fresh_after=now - self.presence_ttl
        )

    # --- publishing ------------------------------------------------------
    async def publish_event(
        self,
        conv: Conversation,
        event: str,
        data: dict[str, Any],
        *,
        to_tenant: bool = False,
        visitor_data: dict[str, Any] | None = None,
        sid: str | None = None,
    ) -> None:
        """Send a non-message event (no seq, not replayed; e.g. `call:ringing`) to the
        conversation's watchers, and with `to_tenant` to every agent of the tenant."""
        extra: dict[str, Any] = {"event": event}
        if visitor_data is not None:
            extra["visitor"] = visitor_data
        channels = [conv_channel(conv.tenant_id, conv.id)]
        if to_tenant:
            extra["agents_via_tenant"] = True  # agents get it once, from the tenant channel
            channels.append(tenant_channel(conv.tenant_id))
        for ch in channels:
            await self._publish(ch, Envelope(kind="event", tenant_id=conv.tenant_id, conversation_id=conv.id,
                                             data=data, origin=self.node_id, sid=sid, extra=extra))

    async def publish_conversation(self, conv: Conversation, *, created: bool = False) -> None:
        """Announce a conversation made or changed outside this service (e.g. by a connector)
        exactly as `start_conversation` / `update_conversation` do."""
        await self._publish_conversation(conv, created=created)

    async def _publish_conversation(self, conv: Conversation, *, created: bool = False) -> None:
        env_kind = "conversation_created" if created else "conversation"
        full = conversation_dict(conv)
        visitor = visitor_conversation_dict(conv)
        await self._publish(
            tenant_channel(conv.tenant_id),
            Envelope(kind=env_kind, tenant_id=conv.tenant_id, conversation_id=conv.id, data=full,
                     origin=self.node_id),
        )
        await self._publish(
            conv_channel(conv.tenant_id, conv.id),
            Envelope(kind="conversation", tenant_id=conv.tenant_id, conversation_id=conv.id, data=full,
                     origin=self.node_id, extra={"visitor": visitor}),
        )
        await self._publish(
            contact_channel(conv.tenant_id, conv.contact_id),
            Envelope(kind=env_kind, tenant_id=conv.tenant_id, conversation_id=conv.id, data=full,
                     origin=self.node_id, extra={"visitor": visitor}),
        )

    async def _publish(self, channel: str, env: Envelope) -> None:
        """Hand `env` to the broker. It does not wait for Redis and retries there itself;
        what it raises (a closed broker, an envelope that does not pack) is logged, never
        fatal to the write that is already stored."""
        try:
            await self.broker.publish(channel, env)
        except Exception:
            log.exception("broker publish of %s to %s failed", env.kind, channel)

    async def _publish_all(self, envelopes: list[tuple[str, Envelope]]) -> None:
        """`_publish` of each, with one broker call (each again on its own when that fails)."""
        if not envelopes:
            return
        try:
            await self.broker.publish_many(envelopes)
        except Exception:
            for channel, env in envelopes:
                await self._publish(channel, env)

    async def close(self) -> None:
        """Stop the group-commit drain and the queue notices."""
        await self.queue_notices.close()
        await self.appender.close()


def _waiting(conv: Conversation) -> bool:
    """In the tenant's queue: open and unassigned."""
    return conv.assignee_id is None and conv.status == ConversationStatus.OPEN


def _holds_room(conv: Conversation) -> bool:
    """Counts against its assignee's capacity: open and assigned."""
    return conv.assignee_id is not None and conv.status == ConversationStatus.OPEN
