"""The one interface every channel connector implements.

A connector turns its channel's inbound events into `InboundMessage`s (handed to an
`InboundSink`, which maps them into conversations) and sends agents' replies back through
the channel's real API (`send`, called by the durable outbox, which retries on
`TransientError` and stops on `PermanentError`).

Webhook-driven connectors expose aiohttp routes; they must verify the channel's
signature on the raw body *before* parsing, answer 401/403 on a bad signature and hand
nothing to the sink. Polling connectors run their loop between `start` and `stop`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from gateway.core.domain import Channel


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: str  # "image", "file", "audio", "video"
    url: str | None = None
    name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    path: str | None = None  # outbound: a file on this node
    read: Callable[[], Awaitable[bytes]] | None = None  # outbound: the stored file's bytes (an agent's upload)
    id: str | None = None  # inbound: the stored file (served by /api/v1/uploads/{id})


@dataclass(frozen=True, slots=True)
class InboundMessage:
    tenant_id: str
    channel: Channel
    external_thread_id: str  # same thread → same conversation
    external_author_id: str  # the contact's identity on the channel (PSID, email address, …)
    external_message_id: str  # dedup key: a retried webhook stores nothing new
    text: str
    sent_at: float
    attachments: tuple[Attachment, ...] = ()
    author_name: str | None = None
    author_email: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # channel specifics (subject, post id, …)
    channel_id: str | None = None  # the tenant inbox (connectors/channels.py) it arrived on
    subject: str | None = None  # the thread's subject (email), kept by a conversation it creates


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    tenant_id: str
    channel: Channel
    conversation_id: str
    message_id: str
    external_thread_id: str
    recipient_id: str  # the contact's identity on the channel
    text: str
    attachments: tuple[Attachment, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    channel_id: str | None = None  # the tenant inbox to send through (None: the first enabled one)
    attempt: int = 1  # try number; > 1 means an earlier try may already have reached the channel
    # parts of a reply sent as several platform messages that earlier tries got accepted
    # (`send_parts`): part → platform id; and the outbox's recorder of each part accepted now
    delivered: Mapping[str, str] = field(default_factory=dict)
    on_part: Callable[[str, str], Awaitable[None]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SendResult:
    external_message_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ConnectorError(Exception):
    pass


class TransientError(ConnectorError):
    """Retry later: 5xx, timeouts, rate limits, quota. `retry_after` in seconds, if known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Do not retry (bad recipient, revoked token, policy): the message ends `failed`."""


InboundSink = Callable[[InboundMessage], Awaitable[None]]

TEXT_PART = "text"


def attachment_part(index: int) -> str:
    return f"attachment:{index}"


async def send_parts(msg: OutboundMessage, parts: list[tuple[str, Callable[[], Awaitable[str]]]]) -> list[str]:
    """Send a reply that goes out as several platform messages (the text, then each file):
    each `(part, send)` whose part an earlier try got accepted (`msg.delivered`) is skipped,
    the others are sent in order and each one accepted is recorded (`msg.on_part`) before
    the next is sent, so a retry after a failure sends only what the customer does not
    have yet. The platform ids of every part, in order."""
    ids: list[str] = []
    for part, send in parts:
        done = msg.delivered.get(part)
        if done is None:
            done = await send()
            if msg.on_part is not None:
                await msg.on_part(part, done)
        ids.append(done)
    return ids


class Connector(Protocol):
    channel: Channel

    async def start(self, sink: InboundSink) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, msg: OutboundMessage) -> SendResult: ...

    def routes(self) -> list[web.RouteDef]:
        """Webhook routes (empty for polling or SMTP connectors)."""
