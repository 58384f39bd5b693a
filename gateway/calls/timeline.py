"""A call's entry in its conversation's timeline: when a call ends (here, or swept as
`node_lost` / `gateway_restart`), one system message is appended through
`ChatService.post_system`, in seq order with the chat around it. Its `client_id` is the
call's id as a UUID (`entry_client_id`), so the entry is written once whoever ends the call
and a client maps the entry back to the call (`call:list`: duration, recording)."""

from __future__ import annotations

import logging
import uuid

from gateway.calls.store import CallRow
from gateway.chat.service import ChatService

log = logging.getLogger(__name__)

DECLINED = "declined"


def entry_client_id(call_id: str) -> str:
    """The entry's client id: the call's id (32 hex digits) as a canonical UUID."""
    return str(uuid.UUID(hex=call_id))


def outcome(row: CallRow) -> str:
    """answered (someone picked up), declined (every agent declined) or missed (nobody answered)."""
    if row.answered_at is not None:
        return "answered"
    return "declined" if row.end_reason == DECLINED else "missed"


def entry_text(row: CallRow) -> str:
    kind = outcome(row)
    if kind == "answered":
        secs = round(row.duration or 0.0)
        return f"Call answered · {secs // 60}:{secs % 60:02d}"
    return "Call declined" if kind == "declined" else "Missed call"


async def record_call(chat: ChatService, row: CallRow) -> None:
    """Append the ended call's entry (idempotent); a failure is logged, never raised: the
    call has ended whatever its entry."""
    try:
        await chat.post_system(row.tenant_id, row.conversation_id, entry_text(row),
                               client_id=entry_client_id(row.id))
    except Exception:
        log.exception("the timeline entry of call %s was not written", row.id)
