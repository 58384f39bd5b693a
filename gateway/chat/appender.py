"""Group commit of message appends: one transaction for whatever arrived meanwhile.

While one transaction appends, the sends that arrive (for any conversation) wait in a
queue; when it commits, the next transaction takes all of them at once (up to
`max_batch`, see `Store.append_batch`). A lone send is written at once, so nothing waits
for a timer; under load a node pays one transaction (four statements) per batch instead
of one transaction (six statements and round trips) per message. One batch is in flight
at a time, so the sends of one conversation are stored in the order they arrived. The
messages of a batch are then published together, which lets the transport coalesce their
frames into one write per recipient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.domain import NewMessage
from gateway.errors import not_found
from gateway.store import AppendRequest, AppendResult, Store


@dataclass(slots=True)
class _Pending:
    request: AppendRequest
    fut: asyncio.Future[AppendResult]


class GroupAppender:
    def __init__(self, store: Store, clock: Callable[[], float], *, max_batch: int = 200) -> None:
        if not 1 <= max_batch <= 200:
            raise ValueError("max_batch must be within 1..200")
        self._store = store
        self._clock = clock
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # transactions written
        self.appended = 0  # messages passed through them

    async def append(self, tenant_id: str, conversation_id: str, msg: NewMessage) -> AppendResult:
        """Append `msg` in the next batch (idempotent and ordered as `Store.append_message`;
        `GatewayError(not_found)` when the conversation is not the tenant's). A cancelled
        caller's message may still be stored; its retry with the same client_id returns it."""
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(AppendRequest(tenant_id, conversation_id, msg), fut))
        if not self._draining:
            self._draining = True
            self._spawn(self._drain())
        return await fut

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        q = self._queue
        try:
            while q:
                batch = q[: self._max_batch]
                del q[: self._max_batch]
                try:
                    results = await self._store.append_batch([p.request for p in batch], now=self._clock())
                except Exception as exc:
                    if len(batch) == 1:
                        if not batch[0].fut.done():
                            batch[0].fut.set_exception(exc)
                        continue
                    # One bad request must not fail the others: retry each on its own.
                    await self._one_by_one(batch)
                    continue
                except BaseException:
                    for p in batch:
                        p.fut.cancel()
                    raise
                self.batches += 1
                self.appended += len(batch)
                for p, r in zip(batch, results, strict=True):
                    if p.fut.done():
                        continue
                    if r is None:
                        p.fut.set_exception(not_found("conversation"))
                    else:
                        p.fut.set_result(r)
        finally:
            self._draining = False
            for p in q:  # only when cancelled (shutdown) mid-queue
                p.fut.cancel()
            q.clear()

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for p in batch:
            try:
                r = (await self._store.append_batch([p.request], now=self._clock()))[0]
            except Exception as exc:
                if not p.fut.done():
                    p.fut.set_exception(exc)
                continue
            except BaseException:
                for q in batch:
                    q.fut.cancel()
                raise
            self.batches += 1
            self.appended += 1
            if not p.fut.done():
                if r is None:
                    p.fut.set_exception(not_found("conversation"))
                else:
                    p.fut.set_result(r)

    async def close(self) -> None:
        """Cancel the drain in flight (its senders see CancelledError)."""
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
