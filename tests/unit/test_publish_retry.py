"""A failed broker publish is retried in the background, so the last message of a quiet
conversation still reaches the other nodes (fault injection around the real in-process broker)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.broker import Envelope, conv_channel
from gateway.broker.memory import MemoryBroker, MemoryHub
from gateway.chat.service import ChatService
from gateway.config import LimitsConfig
from gateway.store.sqlite import SqliteStore


class FlakyBroker(MemoryBroker):
    """The real in-process broker whose first `fail` publishes raise, as a Redis outage would."""

    def __init__(self, hub: MemoryHub, node_id: str, fail: int) -> None:
        super().__init__(hub, node_id)
        self.fail = fail
        self.attempts = 0

    async def publish(self, channel: str, envelope: Envelope) -> None:
        self.attempts += 1
        if self.attempts <= self.fail:
            raise ConnectionError("redis is down")
        await super().publish(channel, envelope)


async def setup(tmp_path: Path, fail: int) -> tuple[ChatService, FlakyBroker, list[Envelope], MemoryBroker]:
    hub = MemoryHub()
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    flaky = FlakyBroker(hub, "a", fail)
    chat = ChatService(store, flaky, node_id="a", limits=LimitsConfig(), clock=lambda: 1.0, presence_ttl=45)
    chat.publish_retry_delays = (0.01, 0.01, 0.01)
    got: list[Envelope] = []
    other = MemoryBroker(hub, "b")

    async def handle(channel: str, env: Envelope) -> None:
        got.append(env)

    await other.start(handle)
    await other.subscribe(conv_channel("t", "c"))
    return chat, flaky, got, other


async def test_a_failed_publish_is_delivered_by_a_retry(tmp_path: Path) -> None:
    chat, flaky, got, other = await setup(tmp_path, fail=2)
    env = Envelope(kind="message", tenant_id="t", conversation_id="c", seq=7, data={"x": 1}, origin="a")
    await chat._publish(conv_channel("t", "c"), env)  # fails, returns at once
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [env] and flaky.attempts == 3
    await chat.close()
    await other.close()
    await chat.store.close()


async def test_retries_give_up_and_close_cancels_them(tmp_path: Path) -> None:
    chat, flaky, got, other = await setup(tmp_path, fail=100)
    env = Envelope(kind="message", tenant_id="t", conversation_id="c", seq=1, data={}, origin="a")
    await chat._publish(conv_channel("t", "c"), env)
    await asyncio.sleep(0.2)
    assert flaky.attempts == 4 and got == [] and not chat._retries  # 1 + 3 retries, then given up
    chat.publish_retry_delays = (60.0,)
    await chat._publish(conv_channel("t", "c"), env)
    assert len(chat._retries) == 1
    await chat.close()  # does not wait a minute
    assert not chat._retries
    await other.close()
    await chat.store.close()
