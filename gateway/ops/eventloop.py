"""The event loop `gateway serve` runs on (`EVENT_LOOP`).

`auto` (the default) and `uvloop` run on uvloop, a libuv loop; `asyncio` on the standard
library's, which delivers fewer events per second and holds more memory per idle
websocket (the comparison: docs/performance.md, History of decisions). `auto` falls back
to the standard loop where uvloop is not installed (it is a dependency, but has no build
for every platform); `uvloop` then refuses to start instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_LOOPS = ("auto", "uvloop", "asyncio")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopUnavailable(RuntimeError):
    pass


def loop_factory(choice: str) -> tuple[str, LoopFactory]:
    """(the loop's name, a factory making it) for an `EVENT_LOOP` value."""
    if choice not in EVENT_LOOPS:
        raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return "asyncio", asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise EventLoopUnavailable("EVENT_LOOP=uvloop but uvloop is not installed") from exc
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


def running_loop_name() -> str:
    """'uvloop' or 'asyncio': the loop this coroutine runs on."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], factory: LoopFactory) -> T:
    """`asyncio.run(main)` on a loop made by `factory` (see `loop_factory`)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
