"""The inbound SMTP listener: aiosmtpd on a thread of its own, with its own event loop.

Anyone on the internet may talk SMTP to the gateway before proving anything, and aiosmtpd
answers pipelined commands and DATA lines without yielding to its event loop between the
lines it already holds (and walks every line of a mail once more when the DATA ends). On
the gateway's loop, 1 MiB of empty DATA lines would stall every other client for a tenth of
a second, and a mail of `SMTP_MAX_MESSAGE_BYTES` for seconds. On its own loop, that work only
competes for the interpreter like any thread (switched every few milliseconds). The handler's
hooks run on the SMTP loop; `GatewayLoop.run` runs a coroutine on the gateway's loop (where the
stores live) and waits for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP

T = TypeVar("T")


class SmtpListener:
    def __init__(self, factory: Callable[[], SMTP], host: str, port: int) -> None:
        self._factory = factory
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Listen; the port bound (the one configured, or the ephemeral one for port 0)."""
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="smtp-listener", daemon=True)
        self._thread.start()
        self.port = await asyncio.wrap_future(ready)
        return self.port

    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(loop.create_server(self._factory, host=self._host, port=self._port))
        except BaseException as exc:
            loop.close()
            asyncio.set_event_loop(None)
            ready.set_exception(exc)
            return
        self._loop = loop
        ready.set_result(server.sockets[0].getsockname()[1])
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.wait_for(server.wait_closed(), 1.0))
            loop.close()
            asyncio.set_event_loop(None)

    async def stop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            await asyncio.to_thread(thread.join)


class GatewayLoop:
    """The gateway's event loop, as seen from the SMTP loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the gateway's loop; its result (or exception), awaited on this one."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
