"""Row <-> domain mapping shared by the SQL backends.

Both drivers hand back rows that can be indexed by column name (`sqlite3.Row`,
`asyncpg.Record`). Enums cross the boundary as their string values, booleans may come
back as 0/1 (SQLite) and JSON columns are TEXT.
"""

from __future__ import annotations

import enum
import json
import os
import time
import uuid
from typing import Any, Protocol, TypeVar

from gateway.core.domain import (
    Agent,
    AgentRole,
    AgentStatus,
    AuthorType,
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Message,
    Tenant,
    TenantStatus,
)


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


class Params:
    """Collects bind values for a dynamically built statement; `add` returns its `$n`."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def add_all(self, values: list[Any]) -> str:
        """Placeholders for an IN (...) list; `values` must not be empty."""
        return ", ".join(self.add(v) for v in values)


E = TypeVar("E", bound=enum.Enum)


def member(cls: type[E], value: Any) -> E:
    """`cls(value)` (ValueError for a value that is not a member's), through the enum's
    value map first: one dict lookup for a member's value, `cls(value)`'s slower path only
    for the rest (which raises)."""
    found = cls._value2member_map_.get(value)
    return found if found is not None else cls(value)  # type: ignore[return-value]


def new_id() -> str:
    return uuid.uuid4().hex


def new_message_id() -> str:
    """32 hex characters like `new_id`, time-ordered (48-bit milliseconds, then 80 random
    bits, as UUIDv7): consecutive messages land on the same primary-key index page
    instead of a random one, one page write less per message."""
    return f"{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{os.urandom(10).hex()}"


def dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def tenant_from_row(row: Row) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        widget_key=row["widget_key"],
        identity_secret=row["identity_secret"],
        require_identity=bool(row["require_identity"]),
        status=TenantStatus(row["status"]),
        created_at=float(row["created_at"]),
        ended_at=_opt_float(row["ended_at"]),
    )


def agent_from_row(row: Row) -> Agent:
    return Agent(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        role=AgentRole(row["role"]),
        status=AgentStatus(row["status"]),
        capacity=int(row["capacity"]),
        created_at=float(row["created_at"]),
        present=bool(row["present"]),
    )


def contact_from_row(row: Row) -> Contact:
    attributes = json.loads(row["attributes"])
    return Contact(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        email=row["email"],
        phone=row["phone"],
        created_at=float(row["created_at"]),
        attributes=attributes if isinstance(attributes, dict) else {},
    )


def conversation_from_row(row: Row, *, advanced_by: int = 0, now: float = 0.0) -> Conversation:
    """The row's conversation; with `advanced_by` > 0, as after appending that many
    messages at `now` (last_seq advanced, updated_at = now)."""
    return Conversation(
        id=row["id"],
        tenant_id=row["tenant_id"],
        channel=member(Channel, row["channel"]),
        contact_id=row["contact_id"],
        status=member(ConversationStatus, row["status"]),
        assignee_id=row["assignee_id"],
        epoch=row["epoch"],
        last_seq=int(row["last_seq"]) + advanced_by,
        external_thread_id=row["external_thread_id"],
        created_at=float(row["created_at"]),
        updated_at=now if advanced_by else float(row["updated_at"]),
        subject=row["subject"],
    )


def message_from_row(row: Row) -> Message:
    attachments = json.loads(row["attachments"])
    return Message(
        id=row["id"],
        tenant_id=row["tenant_id"],
        conversation_id=row["conversation_id"],
        seq=int(row["seq"]),
        client_id=row["client_id"],
        external_id=row["external_id"],
        author_type=member(AuthorType, row["author_type"]),
        author_id=row["author_id"],
        text=row["text"],
        attachments=tuple(attachments),
        created_at=float(row["created_at"]),
        delivery_state=member(DeliveryState, row["delivery_state"]),
        delivery_error=row["delivery_error"],
    )
