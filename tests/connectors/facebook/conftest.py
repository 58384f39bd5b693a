from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import InboundMessage
from connectors.facebook import FacebookConnector, FacebookOptions, FacebookPage, StaticDirectory
from tests.connectors.facebook.fake_graph import FakeGraph, encode_payload, signed_headers
from tests.connectors.facebook.payloads import OTHER_PAGE_ID, PAGE_ID

APP_SECRET = "app-secret-1"
OTHER_APP_SECRET = "tenant-b-own-app-secret"
VERIFY_TOKEN = "verify-me"
PAGE_TOKEN = "EAAG-page-token-1"
OTHER_PAGE_TOKEN = "EAAG-page-token-2"


class Sink:
    """An InboundSink that stores by (tenant, thread, external id) like the real pipeline (dedup)."""

    def __init__(self) -> None:
        self.calls: list[InboundMessage] = []
        self.stored: dict[tuple[str, str, str], InboundMessage] = {}
        self.fail = False

    async def __call__(self, msg: InboundMessage) -> None:
        if self.fail:
            raise RuntimeError("store down")
        self.calls.append(msg)
        self.stored.setdefault((msg.tenant_id, msg.external_thread_id, msg.external_message_id), msg)

    @property
    def messages(self) -> list[InboundMessage]:
        return list(self.stored.values())


def pages(graph_url: str = "http://127.0.0.1:9") -> list[FacebookPage]:
    return [
        FacebookPage(page_id=PAGE_ID, tenant_id="t1", channel_id="ch1", access_token=PAGE_TOKEN,
                     app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, graph_base_url=graph_url,
                     graph_version="v23.0"),
        FacebookPage(page_id=OTHER_PAGE_ID, tenant_id="t2", channel_id="ch2", access_token=OTHER_PAGE_TOKEN,
                     app_secret=OTHER_APP_SECRET, verify_token="other-verify", graph_base_url=graph_url,
                     graph_version="v23.0"),
    ]


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    async with FakeGraph({PAGE_TOKEN: PAGE_ID, OTHER_PAGE_TOKEN: OTHER_PAGE_ID}) as fg:
        yield fg


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def connector(graph: FakeGraph, sink: Sink) -> AsyncIterator[FacebookConnector]:
    c = FacebookConnector(directory=StaticDirectory(pages(graph.url)),
                          options=FacebookOptions(max_body_bytes=64 * 1024, total_timeout=2.0,
                                                  rate_limit_retry_after=60.0, server_error_retry_after=5.0))
    await c.start(sink)
    yield c
    await c.stop()


@pytest.fixture
async def client(connector: FacebookConnector) -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    app.add_routes(connector.routes())
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


Post = Callable[..., Awaitable[Any]]


@pytest.fixture
def post_signed(client: TestClient[Any, Any]) -> Post:
    async def _post(payload: Any, secret: str = APP_SECRET) -> Any:
        body = encode_payload(payload)
        return await client.post("/webhooks/facebook", data=body, headers=signed_headers(secret, body))

    return _post
