"""Single-flight batching: what is submitted while a flush runs goes into the next flush.

A lone item is flushed at once (no timer); under load each flush takes everything that
queued meanwhile, up to `max_batch`, so the cost per flush (a transaction, a round trip)
is shared. One flush runs at a time, so items are flushed in submission order. Used for
group-committed message appends (`chat/appender.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from gateway.aio.tasks import stop_task

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupQueue(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int,
                 isolate_failures: bool = False, yield_under_load: bool = False, name: str = "group-queue") -> None:
        """`flush(items)` returns one result per item, in order. With `isolate_failures`, a
        batch whose flush raises is flushed again item by item, so only the items that
        fail on their own get the error; otherwise every item of the batch gets it.

        With `yield_under_load`, after a flush of more than one item (the queue is under
        load) the next batch is taken one turn of the loop later, so that it also carries
        what the sockets that became readable meanwhile submit: no timer, at most one turn
        of delay, none for a lone item."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._isolate = isolate_failures
        self._yield = yield_under_load
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0  # successful flushes
        self.items = 0  # items they carried

    async def submit(self, item: T) -> R:
        """Flush `item` with whatever else is queued; its result, or its flush's error. A
        cancelled caller's item may still be flushed."""
        return await self.enqueue(item)

    def enqueue(self, item: T) -> asyncio.Future[R]:
        """`submit` without waiting: the future of `item`'s result (or error). A future
        cancelled before its flush is skipped when the results are settled (the item may
        still be flushed)."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=self._name)
        return fut

    async def _drain(self) -> None:
        q = self._queue
        batch: list[tuple[T, asyncio.Future[R]]] = []
        last = 1  # the size of the batch flushed before
        try:
            while q:
                if last > 1 and self._yield:
                    await asyncio.sleep(0)
                batch = q[: self._max_batch]
                last = len(batch)
                del q[: self._max_batch]
                isolate = self._isolate and len(batch) > 1
                if not await self._flush_batch(batch, settle_errors=not isolate):
                    for one in batch:  # one bad item must not fail the others
                        await self._flush_batch([one], settle_errors=True)
                batch = []
        finally:
            self._task = None
            for _, fut in (*batch, *q):  # only when cancelled (close) mid-flush
                if not fut.done():
                    fut.cancel()
            q.clear()

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R]]], *, settle_errors: bool) -> bool:
        """Flush and settle every future; False (nothing settled) when it failed and the
        error is not to be settled."""
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            if not settle_errors:
                return False
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return True
        self.flushes += 1
        self.items += len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)
        return True

    async def close(self) -> None:
        """Stop the flush in flight; its items and those queued are cancelled."""
        if self._task is not None:
            await stop_task(self._task, log, self._name)
