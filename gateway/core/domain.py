"""Domain records shared by every layer: immutable records (`gateway/core/records.py`) and enums."""

from __future__ import annotations

import enum
from dataclasses import field
from typing import Any

from gateway.core.records import record


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class AgentRole(enum.StrEnum):
    AGENT = "agent"
    ADMIN = "admin"


class AgentStatus(enum.StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class ConversationStatus(enum.StrEnum):
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"


class Channel(enum.StrEnum):
    WIDGET = "widget"
    EMAIL = "email"
    FACEBOOK = "facebook"
    ZALO = "zalo"
    YOUTUBE = "youtube"
    COMMENTS = "comments"
    CALL = "call"


class AuthorType(enum.StrEnum):
    CONTACT = "contact"
    AGENT = "agent"
    SYSTEM = "system"
    NOTE = "note"  # an agent's private note: agents only, never a visitor or a channel


class DeliveryState(enum.StrEnum):
    """Delivery of an outbound message to an external channel."""

    NONE = "none"  # not applicable (widget conversations)
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@record
class Tenant:
    id: str
    name: str
    widget_key: str
    identity_secret: str
    require_identity: bool
    status: TenantStatus
    created_at: float
    ended_at: float | None = None


@record
class Agent:
    id: str
    tenant_id: str
    name: str
    role: AgentRole
    status: AgentStatus  # as the agent chose it (kept while they are not connected)
    capacity: int
    created_at: float
    present: bool = False  # some node held a connection of theirs within PRESENCE_TTL

    @property
    def shown_status(self) -> AgentStatus:
        """What routing and the tenant's agents see: the chosen status while present, else offline."""
        return self.status if self.present else AgentStatus.OFFLINE


@record
class Contact:
    id: str
    tenant_id: str
    name: str | None
    email: str | None
    phone: str | None
    created_at: float
    attributes: dict[str, Any] = field(default_factory=dict)


@record
class Conversation:
    id: str
    tenant_id: str
    channel: Channel
    contact_id: str
    status: ConversationStatus
    assignee_id: str | None
    epoch: str
    last_seq: int
    external_thread_id: str | None
    created_at: float
    updated_at: float
    subject: str | None = None  # an email thread's Subject (from its first message)


@record
class Message:
    id: str
    tenant_id: str
    conversation_id: str
    seq: int
    client_id: str | None
    external_id: str | None
    author_type: AuthorType
    author_id: str | None
    text: str
    attachments: tuple[dict[str, Any], ...]
    created_at: float
    delivery_state: DeliveryState = DeliveryState.NONE
    delivery_error: str | None = None


@record
class NewMessage:
    """A message as a writer hands it to the store (seq is assigned there)."""

    author_type: AuthorType
    author_id: str | None
    text: str
    client_id: str | None = None
    external_id: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    delivery_state: DeliveryState = DeliveryState.NONE


@record
class ConversationFilter:
    status: ConversationStatus | None = None
    assignee_id: str | None = None
    unassigned: bool = False
    contact_id: str | None = None
    channel: Channel | None = None
    limit: int = 50
    updated_before: float | None = None
