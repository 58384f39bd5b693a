"""Durable outbox: agents' replies in connector conversations go out through it.

Flow: `on_message` (a `ChatService.message_listeners` entry) stores one outbox row per
agent message in a connector conversation (state `queued`) and marks the message
`pending`. A worker per node claims due rows, calls the channel connector's `send` and
records the outcome; every delivery-state change is published as `message:updated`.

* The rows are an `OutboxRepository` (connectors/outbox_repository.py): a due row is
  claimed by one node only, however many claim at once.
* A claimed row holds a lease (`OutboxSettings.lease`); if its node dies mid-send the row
  is due again when the lease runs out (crash between store and send ⇒ still delivered).
* A conversation whose contact was erased (its link has no recipient any more, see
  gateway/privacy/dsr.py) is never sent to: a reply in it is not queued and ends `failed`
  with `ERASED_ERROR` at once, and a row queued before the erasure fails the same way.
* `TransientError` → retry with exponential backoff and jitter (at least `retry_after`),
  until `max_attempts` or `max_age`, then `failed`; `PermanentError` → `failed` at once.
* A reply a channel sends as several platform messages (Messenger, Zalo: the text, then each
  file) records each part the platform accepted in the row (`OutboxRow.parts`, through
  `OutboundMessage.on_part`): a retry sends only the parts not accepted yet, and a reply
  that ends `failed` says which parts reached the customer and which did not.
* Delivery toward the channel is therefore **at least once**: a node that dies after the
  channel accepted but before recording `sent` makes a second attempt. Connectors pass
  `OutboundMessage.message_id` as the channel's idempotency key where one exists (e.g.
  email uses a Message-ID derived from it, so mail clients collapse duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from connectors.attachments import kind_of
from connectors.base import (
    TEXT_PART,
    Attachment,
    Connector,
    OutboundMessage,
    PermanentError,
    TransientError,
    attachment_part,
)
from connectors.links import LinkRepository
from connectors.outbox_repository import MAX_ERROR_CHARS, OutboxRepository, OutboxRow
from connectors.settings import OutboxSettings
from gateway.chat.service import ChatService
from gateway.core.domain import AuthorType, Channel, Conversation, DeliveryState, Message
from gateway.privacy.dsr import ERASED_ERROR
from gateway.store import NotFound, Store

log = logging.getLogger(__name__)

NOT_CONNECTOR = frozenset({Channel.WIDGET, Channel.CALL})


class Outbox:
    def __init__(
        self,
        *,
        rows: OutboxRepository,
        store: Store,
        chat: ChatService,
        links: LinkRepository,
        connectors: Mapping[Channel, Connector],
        settings: OutboxSettings,
        node_id: str,
        clock: Callable[[], float],
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._rows = rows
        self._store = store
        self._chat = chat
        self._links = links
        self._connectors = connectors  # live view: connectors registered later are seen
        self._settings = settings
        self._node_id = node_id
        self._clock = clock
        self._rand = rand
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- enqueue (ChatService message listener) --------------------------
    async def on_message(self, m: Message, conv: Conversation) -> None:
        if m.author_type != AuthorType.AGENT or conv.channel in NOT_CONNECTOR:
            return
        link = await self._links.get(conv.tenant_id, conv.id)
        if link is not None and not link.recipient_id:  # the contact was erased
            await self._publish_state(conv.tenant_id, m.id, DeliveryState.FAILED, ERASED_ERROR)
            return
        if not await self._rows.enqueue(message_id=m.id, tenant_id=conv.tenant_id, conversation_id=conv.id,
                                        channel=conv.channel, now=self._clock()):
            return
        if m.delivery_state != DeliveryState.PENDING:  # stored `pending` already (ErasedContactCheck): no update
            await self._publish_state(conv.tenant_id, m.id, DeliveryState.PENDING, None)
        self._wake.set()

    async def get(self, message_id: str) -> OutboxRow | None:
        return await self._rows.get(message_id)

    async def reclaim_all(self) -> int:
        """Single-node (embedded) start-up: rows a crashed incarnation of this node left
        `sending` are due at once rather than when their lease runs out (no other node can
        be sending them). Their attempt counts stay: an attempt that may have reached the
        platform is retried with the same message id, which the platforms deduplicate
        where they can (docs/connectors.md)."""
        n = await self._rows.reclaim_all(now=self._clock())
        if n:
            log.info("outbox: %d replies left sending by a crash are due again", n)
            self._wake.set()
        return n

    # --- worker ----------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="connector-outbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed")
                n = 0
            if n == 0:
                self._wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a stop()'s cancel
                # that comes in the turn a wake() ends the wait
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_interval):
                        await self._wake.wait()

    async def run_once(self) -> int:
        """Claim and process the due rows; returns how many were processed."""
        rows = await self._claim()
        for row in rows:
            await self._process(row)
        return len(rows)

    async def _claim(self) -> list[OutboxRow]:
        return await self._rows.claim_due(now=self._clock(), limit=self._settings.batch,
                                          lease=self._settings.lease, node_id=self._node_id)

    async def _process(self, row: OutboxRow) -> None:
        try:
            out = await self._outbound(row)
        except NotFound:
            await self._finish(row, "failed", "conversation or message no longer exists")
            return
        except PermanentError as exc:
            await self._finish(row, "failed", str(exc))
            return
        connector = self._connectors.get(row.channel)
        try:
            if out is None:
                raise PermanentError("message not found")
            if connector is None:
                raise TransientError(f"no {row.channel.value} connector is running on this node")
            result = await connector.send(out)
        except PermanentError as exc:
            await self._finish(row, "failed", str(exc) or type(exc).__name__, out=out)
        except TransientError as exc:
            await self._retry(row, str(exc) or type(exc).__name__, exc.retry_after, out)
        except asyncio.CancelledError:
            raise  # the lease brings the row back
        except Exception as exc:  # a connector bug: retry like a transient failure
            log.exception("connector %s send crashed", row.channel.value)
            await self._retry(row, f"{type(exc).__name__}: {exc}", None, out)
        else:
            await self._finish(row, "sent", None, external_id=result.external_message_id)

    async def _outbound(self, row: OutboxRow) -> OutboundMessage | None:
        conv = await self._store.get_conversation(row.tenant_id, row.conversation_id)
        seq = await self._rows.message_seq(row.tenant_id, row.message_id)
        if seq is None:
            return None
        msgs = await self._store.get_messages(row.tenant_id, conv.id, after_seq=seq - 1, limit=1)
        m = next((x for x in msgs if x.id == row.message_id), None)
        if m is None:
            return None
        link = await self._links.get(row.tenant_id, conv.id)
        if link is not None and not link.recipient_id:
            raise PermanentError(ERASED_ERROR)
        return OutboundMessage(
            tenant_id=row.tenant_id, channel=row.channel, conversation_id=conv.id, message_id=m.id,
            external_thread_id=conv.external_thread_id or "", recipient_id=link.recipient_id if link else "",
            text=m.text, attachments=await self._attachments(row.tenant_id, m.attachments),
            meta=dict(link.meta) if link else {}, channel_id=link.channel_id if link else None,
            attempt=row.attempts, delivered=dict(row.parts), on_part=self._part_recorder(row),
        )

    def _part_recorder(self, row: OutboxRow) -> Callable[[str, str], Awaitable[None]]:
        async def record(part: str, external_id: str) -> None:
            if not await self._rows.record_part(row.message_id, node_id=self._node_id, part=part,
                                                external_id=external_id, now=self._clock()):
                raise TransientError("this node's claim of the reply ran out (another node took it over)")
        return record

    async def _partly(self, row: OutboxRow, out: OutboundMessage | None, error: str) -> str:
        """`error`, preceded by what of the reply reached the customer when some parts did."""
        current = await self._rows.get(row.message_id)
        parts = current.parts if current is not None else {}
        if not parts:
            return error
        atts = out.attachments if out is not None else ()
        names = ([TEXT_PART] if out is None or out.text else []) + [attachment_part(i) for i in range(len(atts))]

        def label(part: str) -> str:
            if part == TEXT_PART:
                return "the text"
            i = int(part.partition(":")[2]) if part.partition(":")[2].isdigit() else -1
            return f"file {atts[i].name!r}" if 0 <= i < len(atts) and atts[i].name else f"file {i + 1}"

        got = [label(p) for p in names if p in parts] or [label(p) for p in sorted(parts)]
        missing = [label(p) for p in names if p not in parts]
        return (f"partly delivered: {', '.join(got)} reached the customer; "
                f"not delivered: {', '.join(missing) or '-'}: {error}")

    async def _attachments(self, tenant_id: str, stored: Sequence[dict[str, Any]]) -> tuple[Attachment, ...]:
        """The message's attachments (the agent's uploads) as the connector sends them: a
        signed link and the stored file's reader. One that is gone fails the send (`PermanentError`)
        rather than leaving the customer a message without it."""
        keeper = self._chat.attachments
        out = []
        for a in stored:
            f = None if keeper is None else await keeper.export(tenant_id, a)
            if f is None:
                raise PermanentError(f"attachment {str(a.get('name') or a.get('id'))[:80]!r} is not available")
            out.append(Attachment(kind=kind_of(f.mime_type), url=f.url, name=f.name, mime_type=f.mime_type,
                                  size=f.size, read=f.read))
        return tuple(out)

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        s = self._settings
        delay = float(min(s.max_delay, s.base_delay * (2 ** max(0, attempts - 1))))
        delay *= 0.5 + self._rand() / 2  # jitter: 50%..100%
        if retry_after is not None:
            delay = max(delay, min(retry_after, s.max_age))
        return delay

    async def _retry(self, row: OutboxRow, error: str, retry_after: float | None,
                     out: OutboundMessage | None = None) -> None:
        now = self._clock()
        delay = self.backoff(row.attempts, retry_after)
        if row.attempts >= self._settings.max_attempts or now + delay - row.created_at > self._settings.max_age:
            await self._finish(row, "failed", f"gave up after {row.attempts} attempts: {error}", out=out)
            return
        if await self._rows.reschedule(row.message_id, node_id=self._node_id, next_attempt_at=now + delay,
                                       error=error, now=now):
            log.info("outbox %s: attempt %d failed (%s); retry in %.1fs", row.message_id, row.attempts, error, delay)

    async def _finish(self, row: OutboxRow, state: str, error: str | None, *, external_id: str | None = None,
                      out: OutboundMessage | None = None) -> None:
        if state == "failed" and error is not None:
            error = await self._partly(row, out, error)
        if not await self._rows.finish(row.message_id, node_id=self._node_id, state=state, error=error,
                                       external_id=external_id, now=self._clock()):
            return  # our lease ran out and another node took over
        delivery = DeliveryState.SENT if state == "sent" else DeliveryState.FAILED
        with contextlib.suppress(NotFound):
            await self._publish_state(row.tenant_id, row.message_id, delivery, error)

    async def _publish_state(self, tenant_id: str, message_id: str, state: DeliveryState, error: str | None) -> None:
        m = await self._store.set_delivery_state(
            tenant_id, message_id, state, None if error is None else error[:MAX_ERROR_CHARS]
        )
        conv = await self._store.get_conversation(tenant_id, m.conversation_id)
        await self._chat.publish_message(m, conv, kind="message_updated")
