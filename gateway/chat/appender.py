"""Group commit of message appends: one transaction for whatever arrived meanwhile.

While one transaction appends, the sends that arrive (for any conversation) wait in a
queue; when it commits, the next transaction takes all of them at once (up to
`max_batch`, see `Store.append_batch`). A lone send is written at once, so nothing waits
for a timer; under load a node pays one transaction per batch instead of one per message,
and after a batch of more than one the next is taken one turn of the loop later, so that
it also carries the sends of the sockets that became readable meanwhile (at most one turn
of delay; a lone send is never delayed). One batch is in flight at a time, so the sends of
one conversation are stored in the order they arrived, and a batch that fails is written
again send by send, so one bad send fails alone. The messages of a batch are then
published together, which lets the transport coalesce their frames into one write per
recipient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.aio.batching import GroupQueue
from gateway.core.domain import NewMessage
from gateway.core.errors import not_found
from gateway.store import AppendRequest, AppendResult, Store


class GroupAppender:
    def __init__(self, store: Store, clock: Callable[[], float], *, max_batch: int = 200,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        """`on_batch`: told (messages, seconds) of each batch written (metrics: batch sizes and times)."""
        if not 1 <= max_batch <= 200:
            raise ValueError("max_batch must be within 1..200")
        self._store = store
        self._clock = clock
        self._queue: GroupQueue[AppendRequest, AppendResult | None] = GroupQueue(
            self._write, max_batch=max_batch, isolate_failures=True, yield_under_load=True, name="group-commit")
        self._on_batch = on_batch

    @property
    def batches(self) -> int:
        """Transactions written."""
        return self._queue.flushes

    @property
    def appended(self) -> int:
        """Messages passed through them."""
        return self._queue.items

    async def append(self, tenant_id: str, conversation_id: str, msg: NewMessage) -> AppendResult:
        """Append `msg` in the next batch (idempotent and ordered as `Store.append_message`;
        `GatewayError(not_found)` when the conversation is not the tenant's). A cancelled
        caller's message may still be stored; its retry with the same client_id returns it."""
        result = await self._queue.submit(AppendRequest(tenant_id, conversation_id, msg))
        if result is None:
            raise not_found("conversation")
        return result

    def enqueue(self, request: AppendRequest) -> asyncio.Future[AppendResult | None]:
        """`append` without waiting, for a caller that appends several messages at once: the
        future of the request's result (None: the conversation is not the tenant's)."""
        return self._queue.enqueue(request)

    async def _write(self, requests: list[AppendRequest]) -> list[AppendResult | None]:
        started = time.perf_counter()
        results = await self._store.append_batch(requests, now=self._clock())
        if self._on_batch is not None:
            self._on_batch(len(requests), time.perf_counter() - started)
        return results

    async def close(self) -> None:
        """Stop the batch in flight (its senders see CancelledError)."""
        await self._queue.close()
