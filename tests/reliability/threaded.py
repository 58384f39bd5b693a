"""A gateway in a thread with its own event loop, for blocking clients."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from gateway.admin.tenants import NewTenant
from gateway.privacy.store import privacy_store
from tests.support.server import RunningGateway, make_config, run_gateway

T = TypeVar("T")


@dataclass
class ThreadedGateway:
    """A gateway on its own event loop in a thread, for blocking clients (requests, schemathesis)."""

    loop: asyncio.AbstractEventLoop
    rg: RunningGateway
    a: NewTenant
    b: NewTenant
    b_conversation: str
    cases: dict[str, int]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def snapshot(self) -> dict[str, dict[str, int]]:
        ps = privacy_store(self.rg.gw.db, sqlite=self.rg.gw.config.embedded)

        async def counts() -> dict[str, dict[str, int]]:
            return {t.tenant.id: await ps.count_tenant_rows(t.tenant.id) for t in (self.a, self.b)}

        return self.run(counts())


@contextlib.contextmanager
def threaded_gateway_running(tmp: Path) -> Iterator[ThreadedGateway]:
    """Tenants A and B; B has a visitor conversation with one message."""
    from tests.support.server import new_client_id, visitor

    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[ThreadedGateway] = concurrent.futures.Future()
    stop = threading.Event()
    cfg = make_config(tmp)
    cfg = replace(cfg, limits=replace(cfg.limits, visitor_messages_per_sec=1000, visitor_messages_burst=1000))

    async def main() -> None:
        try:
            async with run_gateway(cfg) as rg:
                a, b = await rg.tenant("A"), await rg.tenant("B")
                v = await visitor(rg.url, b.tenant.widget_key)
                conv = (await v.call("conversation:start"))["conversation"]["id"]
                await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(), "text": "hi"})
                await v.close()
                ready.set_result(ThreadedGateway(loop, rg, a, b, conv, {}))
                while not stop.is_set():  # noqa: ASYNC110 - a thread's Event
                    await asyncio.sleep(0.05)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    tg = ready.result(30)
    try:
        yield tg
    finally:
        stop.set()
        thread.join(30)
        loop.close()
