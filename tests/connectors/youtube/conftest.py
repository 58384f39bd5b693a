from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from connectors.base import InboundMessage
from connectors.youtube import SqlCheckpointStore, YouTubeConfig, YouTubeConnector
from gateway.store.sqlite import SqliteStore
from tests.connectors.youtube.fake_youtube import OWNER_CHANNEL, FakeYouTube


class Sink:
    """An InboundSink that records messages; `fail_after` makes it raise after N messages."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.fail_after: int | None = None
        self._cond = asyncio.Condition()

    async def __call__(self, msg: InboundMessage) -> None:
        if self.fail_after is not None and len(self.messages) >= self.fail_after:
            raise RuntimeError("sink down")
        async with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    @property
    def ids(self) -> list[str]:
        return [m.external_message_id for m in self.messages]

    async def wait_count(self, n: int, timeout: float = 5.0) -> None:
        async def _wait() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: len(self.messages) >= n)

        await asyncio.wait_for(_wait(), timeout)


@pytest.fixture
async def fake() -> AsyncIterator[FakeYouTube]:
    fy = FakeYouTube()
    fy.add_video("vid00000001")
    await fy.start()
    try:
        yield fy
    finally:
        await fy.stop()


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "yt.sqlite3"))
    await store.open()
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def checkpoints(db: SqliteStore) -> SqlCheckpointStore:
    return SqlCheckpointStore(db)


@pytest.fixture
async def make_connector(
    fake: FakeYouTube, checkpoints: SqlCheckpointStore
) -> AsyncIterator[Callable[..., YouTubeConnector]]:
    made: list[YouTubeConnector] = []

    def _make(**overrides: Any) -> YouTubeConnector:
        store = overrides.pop("checkpoints", checkpoints)
        clock = overrides.pop("clock", None)
        kw: dict[str, Any] = {
            "tenant_id": "t1",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "refresh_token": fake.refresh_token,
            "channel_id": OWNER_CHANNEL,
            "api_base": fake.api_base,
            "token_url": fake.token_url,
            "poll_interval": 0.05,
            "initial_lookback": 30 * 86400.0,
            "rate_backoff_initial": 0.02,
            "rate_backoff_max": 0.2,
            "quota_backoff": 0.2,
            "reply_sweep_every": 1,
        }
        kw.update(overrides)
        extra = {"clock": clock} if clock is not None else {}
        conn = YouTubeConnector(YouTubeConfig(**kw), store, **extra)
        made.append(conn)
        return conn

    yield _make
    for conn in made:
        await conn.stop()
