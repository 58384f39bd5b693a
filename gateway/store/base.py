"""The `Store` protocol every persistence backend implements.

Every method that reads or writes tenant data takes the tenant id and scopes its
query by it: a row of another tenant is indistinguishable from a missing row.
Times are UNIX seconds (float). Ids are opaque strings (UUID hex).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.core.domain import (
    Agent,
    AgentRole,
    AgentStatus,
    Channel,
    Contact,
    Conversation,
    ConversationFilter,
    ConversationStatus,
    DeliveryState,
    Message,
    NewMessage,
    Tenant,
)
from gateway.core.records import record


class StoreError(Exception):
    """Base class of store errors."""


class NotFound(StoreError):
    """The row does not exist (or belongs to another tenant)."""


@record
class AppendResult:
    message: Message
    conversation: Conversation  # the conversation after the append (last_seq updated)
    created: bool  # False when an earlier message with the same client_id/external_id was returned


@record
class AppendRequest:
    """One message to append to one conversation (see `Store.append_batch`)."""

    tenant_id: str
    conversation_id: str
    message: NewMessage


class Store(Protocol):
    # --- lifecycle -------------------------------------------------------
    async def migrate(self) -> None:
        """Apply pending numbered migrations (idempotent, safe to run on every start)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store is unreachable."""

    # --- settings (server-wide key/value, e.g. the token-signing secret) --
    async def get_or_create_setting(self, key: str, value: str) -> str:
        """Return the stored value of `key`, storing `value` first if absent (race-safe)."""

    # --- tenants ---------------------------------------------------------
    async def create_tenant(
        self, *, name: str, widget_key: str, identity_secret: str, now: float
    ) -> Tenant: ...

    async def get_tenant(self, tenant_id: str) -> Tenant:
        """Raise NotFound."""

    async def get_tenant_by_widget_key(self, widget_key: str) -> Tenant:
        """Raise NotFound."""

    async def update_tenant(
        self,
        tenant_id: str,
        *,
        require_identity: bool | None = None,
        status: str | None = None,
        ended_at: float | None = None,
    ) -> Tenant: ...

    async def list_tenants(self) -> list[Tenant]: ...

    # --- agents ----------------------------------------------------------
    async def create_agent(
        self,
        *,
        tenant_id: str,
        name: str,
        role: AgentRole,
        token_hash: str,
        capacity: int,
        now: float,
    ) -> Agent: ...

    async def get_agent(self, tenant_id: str, agent_id: str) -> Agent:
        """Raise NotFound."""

    async def get_agent_by_token_hash(self, token_hash: str) -> Agent:
        """Raise NotFound."""

    async def list_agents(self, tenant_id: str) -> list[Agent]: ...

    async def set_agent_status(self, tenant_id: str, agent_id: str, status: AgentStatus) -> Agent: ...

    async def touch_presence(self, node_id: str, agent_ids: dict[str, int], now: float) -> list[Agent]:
        """Record that `node_id` holds `agent_ids[agent]` live sockets for each agent at `now`
        (unknown ids are skipped). A 0 keeps the row with 0 sockets: the time the agent's
        last connection to that node ended. Every agent given a count > 0 becomes `present`;
        returns those who were not (each flip is returned by exactly one writer)."""

    async def expire_presence(self, fresh_after: float) -> list[Agent]:
        """Every tenant's agents who are `present` but have no presence row updated after
        `fresh_after` (no connection anywhere since, or only on nodes that stopped
        heartbeating) stop being present; returns them (each flip is returned by exactly one
        caller, whichever node runs it). Rows not updated after `fresh_after` are deleted."""

    async def connected_agents(self, tenant_id: str, fresh_after: float) -> set[str]:
        """Ids of the tenant's agents with a presence row of sockets > 0 updated after
        `fresh_after`: some node holds a live connection of theirs (whatever their status)."""

    async def queue_position(self, tenant_id: str, conversation_id: str) -> int | None:
        """1 + the tenant's open unassigned conversations created before this one (ties by
        id), when it is open and unassigned; None otherwise. Raise NotFound."""

    async def assign_next_agent(
        self, tenant_id: str, conversation_id: str, *, now: float, fresh_after: float
    ) -> Conversation | None:
        """Assign an unassigned open conversation round robin to an agent who is online,
        has a presence row updated after `fresh_after` with sockets > 0 and fewer open
        assigned conversations than its capacity. Serialised per tenant. Returns the
        updated conversation, or None when no agent qualifies (or it is already assigned)."""

    async def list_unassigned(self, tenant_id: str, limit: int) -> list[Conversation]:
        """Open conversations without an assignee, oldest first."""

    # --- contacts --------------------------------------------------------
    async def create_contact(
        self,
        *,
        tenant_id: str,
        name: str | None,
        email: str | None,
        phone: str | None = None,
        now: float,
    ) -> Contact: ...

    async def get_contact(self, tenant_id: str, contact_id: str) -> Contact:
        """Raise NotFound."""

    async def find_contact_by_identity(self, tenant_id: str, kind: str, value: str) -> Contact | None: ...

    async def get_or_create_contact_by_identity(
        self, tenant_id: str, kind: str, value: str, *, name: str | None, email: str | None, now: float
    ) -> Contact:
        """Race-safe: two concurrent callers get the same contact."""

    async def update_contact(
        self, tenant_id: str, contact_id: str, fields: dict[str, Any]
    ) -> Contact:
        """`fields` may hold name, email, phone, attributes. Raise NotFound."""

    async def list_contacts(self, tenant_id: str, *, limit: int, offset: int) -> list[Contact]: ...

    async def get_contacts(self, tenant_id: str, contact_ids: Sequence[str]) -> dict[str, Contact]:
        """contact id -> contact, for those of `contact_ids` that are the tenant's (others,
        and unknown ids, are left out)."""

    # --- conversations ---------------------------------------------------
    async def create_conversation(
        self,
        *,
        tenant_id: str,
        channel: Channel,
        contact_id: str,
        now: float,
        external_thread_id: str | None = None,
        subject: str | None = None,
    ) -> Conversation:
        """New open conversation with a fresh random epoch and last_seq 0.
        With an external_thread_id, race-safe get-or-create on (tenant, channel, thread);
        `subject` (an email thread's Subject) is kept from the creation only."""

    async def get_conversation(self, tenant_id: str, conversation_id: str) -> Conversation:
        """Raise NotFound."""

    async def list_conversations(self, tenant_id: str, flt: ConversationFilter) -> list[Conversation]:
        """Newest `updated_at` first."""

    async def update_conversation(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        now: float,
        status: ConversationStatus | None = None,
        assignee_id: str | None = None,
        unassign: bool = False,
    ) -> Conversation:
        """Raise NotFound (also when assignee_id is not an agent of the tenant)."""

    # --- messages --------------------------------------------------------
    async def append_message(
        self, tenant_id: str, conversation_id: str, msg: NewMessage, *, now: float
    ) -> AppendResult:
        """Idempotent, ordered append. If a message with the same client_id (or
        external_id) exists in the conversation, return it with created=False and
        change nothing. Otherwise assign seq = last_seq + 1 in the same transaction
        as the insert, serialised per conversation. Raise NotFound."""

    async def append_messages(
        self, tenant_id: str, conversation_id: str, msgs: Sequence[NewMessage], *, now: float
    ) -> list[AppendResult]:
        """`append_message` for up to 200 messages of one conversation in one transaction
        (group commit): one result per input, in order; new messages take consecutive seqs
        in input order. A message repeating the client_id/external_id of a stored message,
        or of an earlier one in the same batch, is returned as that message with
        created=False. Every result carries the conversation as it is after the batch.
        Raise NotFound (nothing stored), ValueError for more than 200 messages."""

    async def append_batch(self, requests: Sequence[AppendRequest], *, now: float) -> list[AppendResult | None]:
        """Group commit across conversations: up to 200 appends in one transaction. One
        result per request, in order; None where the conversation is not the tenant's
        (nothing stored for that request, the others proceed). Within a conversation the
        rules of `append_messages` hold (consecutive seqs in request order, duplicates of
        stored or earlier requests returned with created=False). Raise ValueError for
        more than 200 requests."""

    async def get_messages(
        self,
        tenant_id: str,
        conversation_id: str,
        *,
        after_seq: int = 0,
        before_seq: int | None = None,
        limit: int = 100,
        newest: bool = False,
    ) -> list[Message]:
        """Messages with after_seq < seq < before_seq, ascending by seq. With newest=True
        the page is the last `limit` of that range (still returned ascending)."""

    async def set_delivery_state(
        self,
        tenant_id: str,
        message_id: str,
        state: DeliveryState,
        error: str | None = None,
    ) -> Message: ...

    # --- read positions -------------------------------------------------
    async def set_read(
        self, tenant_id: str, conversation_id: str, participant: str, seq: int
    ) -> int:
        """Move the participant's read position forward (never back) to min(seq, last_seq).
        Return the stored position."""

    async def get_reads(self, tenant_id: str, conversation_id: str) -> dict[str, int]:
        """participant -> last read seq."""

    async def get_read_positions(
        self, tenant_id: str, participant: str, conversation_ids: list[str]
    ) -> dict[str, int]:
        """conversation id -> last read seq of that participant (missing = 0)."""

    async def get_last_messages(self, tenant_id: str, conversation_ids: Sequence[str]) -> dict[str, Message]:
        """conversation id -> its newest message (seq = last_seq), for those of
        `conversation_ids` that are the tenant's and hold a message."""
