"""Domain records → JSON-able dicts as clients see them (docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from gateway.core.domain import Agent, AuthorType, Contact, Conversation, Message


def is_note(data: dict[str, Any]) -> bool:
    """Whether a `message_dict` is a private note (agents only)."""
    return bool(data["author"]["type"] == AuthorType.NOTE.value)


def hidden_note(data: dict[str, Any]) -> dict[str, Any]:
    """What a visitor gets in a private note's place (`message_dict` of a note): its place
    in the stream (seq, epoch) with `hidden: true` and nothing of the note — no id, author,
    text, attachments or time — so that the visitor's stream has no gap to repair."""
    return {"id": None, "conversation_id": data["conversation_id"], "seq": data["seq"], "epoch": data["epoch"],
            "client_id": None, "author": {"type": AuthorType.SYSTEM.value, "id": None}, "text": "",
            "attachments": [], "created_at": 0.0, "delivery": {"state": "none", "error": None}, "hidden": True}


def visitor_message_dict(m: Message, epoch: str) -> dict[str, Any]:
    """A message as a visitor sees it: `message_dict`, or `hidden_note` for a private note."""
    data = message_dict(m, epoch)
    return hidden_note(data) if m.author_type == AuthorType.NOTE else data


def message_dict(m: Message, epoch: str) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "epoch": epoch,
        "client_id": m.client_id,
        "author": {"type": m.author_type.value, "id": m.author_id},
        "text": m.text,
        "attachments": list(m.attachments),
        "created_at": m.created_at,
        "delivery": {"state": m.delivery_state.value, "error": m.delivery_error},
    }


PREVIEW_CHARS = 200


def last_message_dict(m: Message) -> dict[str, Any]:
    """A conversation's newest message as lists show it: a text preview (its first
    `PREVIEW_CHARS` characters), its author, time and how many attachments it has."""
    return {"seq": m.seq, "text": m.text[:PREVIEW_CHARS], "author": {"type": m.author_type.value, "id": m.author_id},
            "created_at": m.created_at, "attachments": len(m.attachments)}


def conversation_dict(c: Conversation, *, unread: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "channel": c.channel.value,
        "contact_id": c.contact_id,
        "status": c.status.value,
        "assignee_id": c.assignee_id,
        "epoch": c.epoch,
        "last_seq": c.last_seq,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "subject": c.subject,
    }
    if unread is not None:
        out["unread"] = unread
    return out


def visitor_conversation_dict(c: Conversation) -> dict[str, Any]:
    """What a visitor may see of its own conversation (no internal routing details)."""
    return {
        "id": c.id,
        "status": c.status.value,
        "assigned": c.assignee_id is not None,
        "epoch": c.epoch,
        "last_seq": c.last_seq,
        "created_at": c.created_at,
    }


def agent_dict(a: Agent) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "role": a.role.value,
        "status": a.shown_status.value,
        "chosen_status": a.status.value,
        "capacity": a.capacity,
    }


def contact_dict(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "attributes": c.attributes,
        "created_at": c.created_at,
    }
