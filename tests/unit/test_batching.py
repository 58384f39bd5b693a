"""GroupQueue (single-flight batching) and the task helpers it and the brokers share."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from gateway.aio.batching import GroupQueue
from gateway.aio.tasks import TaskSet, stop_task


async def test_items_queued_during_a_flush_go_together_in_order() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    q: GroupQueue[int, int] = GroupQueue(flush, max_batch=3)
    results = await asyncio.gather(*(q.submit(i) for i in range(7)))
    assert results == [i * 10 for i in range(7)]
    assert [x for b in flushed for x in b] == list(range(7)) and all(len(b) <= 3 for b in flushed)
    assert (q.flushes, q.items) == (len(flushed), 7)


@pytest.mark.parametrize("yielding", [True, False])
async def test_under_load_the_next_batch_waits_one_turn_for_more(yielding: bool) -> None:
    """With yield_under_load, after a flush of several items the next batch also takes
    what is submitted in the loop's next turn; a lone item is never held back."""
    flushed: list[list[str]] = []
    loop = asyncio.get_running_loop()

    async def flush(items: list[str]) -> list[str]:
        flushed.append(items)
        if items == ["a1", "a2"]:  # a batch flushed under load: "b" now, "c" in the turn after
            q.enqueue("b")
            loop.call_soon(lambda: loop.call_soon(lambda: q.enqueue("c")))
        await asyncio.sleep(0)
        return items

    q: GroupQueue[str, str] = GroupQueue(flush, max_batch=10, yield_under_load=yielding)
    await asyncio.gather(q.submit("a1"), q.submit("a2"))
    for _ in range(10):
        await asyncio.sleep(0)
    assert [x for b in flushed for x in b] == ["a1", "a2", "b", "c"]
    assert flushed[1:] == ([["b", "c"]] if yielding else [["b"], ["c"]])
    flushed.clear()
    assert await q.submit("x") == "x" and flushed == [["x"]]  # a lone item: flushed at once


async def test_a_failed_flush_fails_its_items_unless_isolated() -> None:
    async def flush(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return items

    plain: GroupQueue[int, int] = GroupQueue(flush, max_batch=10)
    res = await asyncio.gather(*(plain.submit(i) for i in (1, 13, 2)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in res)
    isolated: GroupQueue[int, int] = GroupQueue(flush, max_batch=10, isolate_failures=True)
    res = await asyncio.gather(*(isolated.submit(i) for i in (1, 13, 2)), return_exceptions=True)
    assert res[0] == 1 and isinstance(res[1], ValueError) and res[2] == 2


async def test_close_cancels_the_flush_in_flight_and_the_queue() -> None:
    started = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        started.set()
        await asyncio.sleep(60)
        return items

    q: GroupQueue[int, int] = GroupQueue(flush, max_batch=1)
    subs = [asyncio.ensure_future(q.submit(i)) for i in range(3)]
    await started.wait()
    await asyncio.wait_for(q.close(), 2)
    res = await asyncio.gather(*subs, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in res)


async def test_stop_task_outlasts_a_swallowed_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed once, as wait_for on 3.11 can
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, logging.getLogger("t"), "stubborn"), 2)
    assert task.cancelled()

    async def broken() -> None:
        raise RuntimeError("boom")

    failed = asyncio.ensure_future(broken())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await stop_task(failed, logging.getLogger("t"), "broken")
    assert "broken failed" in caplog.text


async def test_task_set_holds_until_done_and_closes() -> None:
    ts = TaskSet()
    done = ts.spawn(asyncio.sleep(0), name="quick")
    slow = ts.spawn(asyncio.sleep(60))
    assert done.get_name() == "quick" and len(ts) == 2
    await done
    await asyncio.sleep(0)
    assert len(ts) == 1
    await ts.close()
    assert slow.cancelled() and len(ts) == 0
