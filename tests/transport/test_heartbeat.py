"""Heartbeats and deadlines on the edge's timer wheel: an item fires in the tick after its
deadline and never before, stale entries are skipped, a burst is spread over runs; on a
real server a missing pong closes the session and an answered ping keeps it."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.edge.engine import EngineSettings, heartbeat_tick
from gateway.edge.wheel import TimerWheel
from tests.support.server import make_config, run_gateway
from tests.support.waits import until
from tests.transport.rawws import RawClient


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Item:
    def __init__(self, fired: list[tuple[str, float]], name: str) -> None:
        self.tick: object = None
        self.name = name
        self._fired = fired

    def on_time(self, now: float) -> None:
        self._fired.append((self.name, now))


def test_the_heartbeat_tick_is_coarse_by_default_and_a_tenth_of_a_short_deadline() -> None:
    """The defaults (25 s / 20 s / 10 s) tick once a second, so that the pings due in one
    second leave together; sub-second settings (the reference test-suite's 300 / 200 ms) keep
    every deadline within 10 % of its length."""
    assert heartbeat_tick(EngineSettings()) == 1.0
    assert heartbeat_tick(EngineSettings(ping_interval=0.3, ping_timeout=0.2, connect_timeout=0.5)) == 0.02
    assert heartbeat_tick(EngineSettings(ping_interval=25, ping_timeout=20, connect_timeout=0)) == 1.0
    assert heartbeat_tick(EngineSettings(ping_interval=5, ping_timeout=3, connect_timeout=0)) == 0.3
    assert heartbeat_tick(EngineSettings(timer_resolution=0.01)) == 0.01


async def test_an_item_fires_within_a_tick_after_its_deadline_never_before() -> None:
    clock, fired = Clock(), list[tuple[str, float]]()
    wheel = TimerWheel(0.025, clock=clock)
    a, b = Item(fired, "a"), Item(fired, "b")
    wheel.file(a, 1000.3)
    wheel.file(b, 1000.31)
    clock.t = 1000.299
    wheel.run_due()
    assert fired == []
    clock.t = 1000.301
    wheel.run_due()
    assert [n for n, _ in fired] == ["a"]
    clock.t = 1000.326
    wheel.run_due()
    assert [n for n, _ in fired] == ["a", "b"]
    assert len(wheel) == 0
    wheel.close()


async def test_the_wheel_looks_the_loop_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`asyncio.get_running_loop()` costs a getpid() system call on CPython 3.11; the
    heartbeat asks the wheel for the time once per ping and once per pong."""
    real = asyncio.get_running_loop
    from_wheel = 0

    def counting() -> asyncio.AbstractEventLoop:
        nonlocal from_wheel
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is not None and caller.f_globals.get("__name__") == "gateway.edge.wheel":
            from_wheel += 1
        return real()

    monkeypatch.setattr(asyncio, "get_running_loop", counting)
    fired = list[tuple[str, float]]()
    wheel = TimerWheel(0.001)
    for i in range(100):
        wheel.file(Item(fired, str(i)), wheel.now() + 0.002 + i / 10_000)
        wheel.now()
    await until(lambda: len(fired) == 100)
    assert from_wheel == 1
    wheel.close()


async def test_refiling_and_cancelling_leave_stale_entries_that_are_skipped() -> None:
    clock, fired = Clock(), list[tuple[str, float]]()
    wheel = TimerWheel(0.025, clock=clock)
    a, b = Item(fired, "a"), Item(fired, "b")
    wheel.file(a, 1000.1)
    wheel.file(a, 1000.5)  # later: the entry at 1000.1 is stale
    wheel.file(b, 1000.1)
    wheel.cancel(b)
    clock.t = 1000.2
    wheel.run_due()
    assert fired == []
    clock.t = 1000.5
    wheel.run_due()
    assert [n for n, _ in fired] == ["a"]
    wheel.close()


async def test_a_burst_is_spread_over_runs_in_order() -> None:
    clock, fired = Clock(), list[tuple[str, float]]()
    wheel = TimerWheel(0.025, clock=clock, per_tick=3)
    items = [Item(fired, str(i)) for i in range(8)]
    for i, it in enumerate(items):
        wheel.file(it, 1000.1 + i * 0.001)
    clock.t = 1000.2
    for n in (3, 6, 8, 8):
        wheel.run_due()
        assert len(fired) == n
    assert [n for n, _ in fired] == [str(i) for i in range(8)]
    wheel.close()


async def test_a_missing_pong_closes_and_an_answered_ping_keeps_the_session(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    # the lively client has 1 s to answer each ping: ample on a loaded machine
    config = replace(config, server=replace(config.server, ping_interval=0.2, ping_timeout=1.0))
    async with run_gateway(config) as rg:
        engine = rg.gw.realtime.sockets.engine
        silent = await RawClient.connect(rg.url)  # never reads, so never answers a ping
        lively = await RawClient.connect(rg.url)
        reader = asyncio.create_task(lively.recv())  # answers pings while it waits
        closed = await asyncio.wait_for(silent.closed(), 10)
        assert closed and engine.timeouts["ping_timeout"] == 1
        assert list(engine.sessions) == [lively.eio_sid]
        assert not reader.done()
        reader.cancel()
        await lively.close()
        await silent.close()
