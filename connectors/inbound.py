"""Inbound pipeline: `InboundMessage` → contact, conversation, message, live events.

* contact: by channel identity (kind = channel value, value = external author id);
* conversation: race-safe get-or-create on (tenant, channel, external thread id); the
  first message of a thread records its `connector_links` row (inbox + recipient), which
  is what marks the conversation as new: it is auto-assigned and announced;
* message: appended with `external_id` = external message id, so a retried webhook (or a
  re-delivered mail) stores nothing new and announces nothing;
* a resolved conversation that receives a new message is reopened (and re-assigned);
* the message is published like a widget message, then `ChatService.message_listeners` run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from connectors.attachments import RemoteFiles
from connectors.base import Attachment, InboundMessage
from connectors.links import LinkRepository
from gateway.chat.service import ChatService
from gateway.core.domain import AuthorType, Conversation, ConversationStatus, Message, NewMessage
from gateway.store import Store

MAX_SUBJECT = 998  # RFC 5322's line length
MAX_INBOUND_TEXT = 64 * 1024


@dataclass(frozen=True, slots=True)
class InboundResult:
    message: Message
    conversation: Conversation
    created: bool  # False: a duplicate of an already stored external message id
    new_conversation: bool


def attachment_dict(a: Attachment) -> dict[str, object]:
    return {k: v for k, v in (("id", a.id), ("kind", a.kind), ("url", a.url), ("name", a.name),
                              ("mime_type", a.mime_type), ("size", a.size)) if v is not None}


class InboundPipeline:
    def __init__(self, store: Store, chat: ChatService, links: LinkRepository, clock: Callable[[], float],
                 files: RemoteFiles | None = None) -> None:
        """`files`: keeps the files a channel only links to (stored with an id before the message)."""
        self._store = store
        self._chat = chat
        self._links = links
        self._clock = clock
        self._files = files

    async def __call__(self, msg: InboundMessage) -> None:
        """The `InboundSink` handed to connectors' `start`."""
        await self.deliver(msg)

    async def deliver(self, msg: InboundMessage) -> InboundResult:
        if self._files is not None and msg.attachments:
            source = f"{msg.channel.value}:{msg.channel_id or ''}".rstrip(":")
            msg = replace(msg, attachments=await self._files.adopt(msg.tenant_id, source, msg.attachments))
        now = self._clock()
        contact = await self._store.get_or_create_contact_by_identity(
            msg.tenant_id, msg.channel.value, msg.external_author_id,
            name=msg.author_name, email=msg.author_email, now=now,
        )
        conv = await self._store.create_conversation(
            tenant_id=msg.tenant_id, channel=msg.channel, contact_id=contact.id, now=now,
            external_thread_id=msg.external_thread_id, subject=(msg.subject or "")[:MAX_SUBJECT] or None,
        )
        new_conv = await self._links.ensure(
            msg.tenant_id, conv.id, channel_id=msg.channel_id, recipient_id=msg.external_author_id
        )
        res = await self._store.append_message(
            msg.tenant_id, conv.id,
            NewMessage(
                author_type=AuthorType.CONTACT, author_id=contact.id, text=msg.text[:MAX_INBOUND_TEXT],
                external_id=msg.external_message_id,
                attachments=tuple(attachment_dict(a) for a in msg.attachments),
            ),
            now=now,
        )
        conv = res.conversation
        if new_conv:
            conv = await self._chat.try_assign(conv) or conv
            await self._chat.publish_conversation(conv, created=True)
        elif res.created and conv.status == ConversationStatus.RESOLVED:
            conv = await self._store.update_conversation(
                msg.tenant_id, conv.id, now=self._clock(), status=ConversationStatus.OPEN
            )
            conv = await self._chat.try_assign(conv) or conv
            await self._chat.publish_conversation(conv)
        # Published also for a duplicate (the first attempt may have died before publishing);
        # receivers drop what they have already delivered.
        await self._chat.publish_message(res.message, conv)
        if res.created:
            for listener in self._chat.message_listeners:
                await listener(res.message, conv)
        return InboundResult(res.message, conv, res.created, new_conv)
