"""Group commit of message appends, per conversation.

While one transaction appends to a conversation, the sends that arrive for it wait in a
queue; when the transaction commits, the next one takes all of them at once (up to
`max_batch`). A lone send is written at once, so nothing waits for a timer, and under
load a conversation costs one transaction per batch instead of one per message. The
batch's messages are then published together, which is what lets the transport
coalesce their frames into one write per recipient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.domain import NewMessage
from gateway.store import AppendResult, Store

Key = tuple[str, str]  # (tenant_id, conversation_id)


@dataclass(slots=True)
class _Pending:
    msg: NewMessage
    fut: asyncio.Future[AppendResult]


class GroupAppender:
    def __init__(self, store: Store, clock: Callable[[], float], *, max_batch: int = 100) -> None:
        if not 1 <= max_batch <= 200:
            raise ValueError("max_batch must be within 1..200")
        self._store = store
        self._clock = clock
        self._max_batch = max_batch
        self._queues: dict[Key, list[_Pending]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # transactions written
        self.appended = 0  # messages passed through them

    async def append(self, tenant_id: str, conversation_id: str, msg: NewMessage) -> AppendResult:
        """Append `msg` (idempotent, ordered: see `Store.append_messages`) in the next batch
        of its conversation. A cancelled caller's message may still be stored; its retry
        with the same client_id then returns it."""
        key = (tenant_id, conversation_id)
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = []
            self._spawn(self._drain(key, q))
        q.append(_Pending(msg, fut))
        return await fut

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: Key, q: list[_Pending]) -> None:
        try:
            while q:
                batch = q[: self._max_batch]
                del q[: self._max_batch]
                try:
                    results = await self._store.append_messages(key[0], key[1], [p.msg for p in batch],
                                                                now=self._clock())
                except Exception as exc:  # each waiting sender gets the store's error
                    for p in batch:
                        if not p.fut.done():
                            p.fut.set_exception(exc)
                    continue
                except BaseException:
                    for p in batch:
                        p.fut.cancel()
                    raise
                self.batches += 1
                self.appended += len(batch)
                for p, r in zip(batch, results, strict=True):
                    if not p.fut.done():
                        p.fut.set_result(r)
        finally:
            if self._queues.get(key) is q:
                del self._queues[key]
            for p in q:  # only when cancelled (shutdown) mid-queue
                p.fut.cancel()

    async def close(self) -> None:
        """Cancel the drains in flight (their senders see CancelledError)."""
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
