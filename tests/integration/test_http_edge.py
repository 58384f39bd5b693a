"""Raw HTTP at the edge, over loopback sockets: a request declaring a huge body is answered
413 before any of the body is sent, and requests aiohttp cannot parse are answered 400
without an ERROR (or any traceback) in the log."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from gateway.ops.logs import AIOHTTP_SERVER_LOGGER, MalformedRequestFilter, quiet_malformed_requests, setup_logging
from tests.integration.edge_setup import JSON_ROUTES, Edge
from tests.support.server import RunningGateway

HUGE = 10 * 1024**3  # declared, never sent


async def exchange(url: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` on a new loopback connection; the response's status, headers and body."""
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # bounds a hang only
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
        return status, headers, body
    finally:
        writer.close()


def _request(method: str, path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("route", sorted(JSON_ROUTES), ids=[f"{m} {p}" for m, p in sorted(JSON_ROUTES)])
async def test_huge_declared_body_is_413_before_it_is_sent(edge: Edge, route: tuple[str, str]) -> None:
    path, _, headers = JSON_ROUTES[route](edge, b"{}")
    status, _, body = await exchange(edge.rg.url, _request(route[0], path, headers, HUGE))
    assert status == 413, body
    assert orjson.loads(body)["error"]["code"] == "payload_too_large"


async def test_huge_declared_upload_is_413_before_it_is_sent(edge: Edge) -> None:
    headers = {"X-Widget-Key": edge.widget_key, "X-Visitor-Token": edge.visitor_token, "Content-Type": "image/png"}
    status, _, body = await exchange(edge.rg.url, _request("POST", "/api/v1/uploads?name=a.png", headers, HUGE))
    assert status == 413, body
    assert orjson.loads(body)["error"]["code"] == "payload_too_large"


MALFORMED = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "bad header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    "NUL in path": b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "header line too long": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    "unknown HTTP version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "negative Content-Length": b"POST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "no Host": b"POST /api/v1/agents HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    "bad chunk size": b"POST /api/v1/public/comments HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "after a good request": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
}


@pytest.fixture
def quiet() -> Iterator[MalformedRequestFilter]:
    """The filter `setup_logging` installs on aiohttp's server logger (removed afterwards)."""
    flt = quiet_malformed_requests()
    yield flt
    logging.getLogger(AIOHTTP_SERVER_LOGGER).removeFilter(flt)


async def test_malformed_requests_are_400_without_error_log(
        gateway: RunningGateway, quiet: MalformedRequestFilter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=AIOHTTP_SERVER_LOGGER)
    for name, raw in MALFORMED.items():
        status, _, _ = await exchange(gateway.url, raw)
        assert status == 400, name
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    server = [r for r in caplog.records if r.name == AIOHTTP_SERVER_LOGGER]
    assert len(server) <= len(MALFORMED)
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in server), [r.getMessage() for r in server]


def test_setup_logging_installs_the_filter() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server = logging.getLogger(AIOHTTP_SERVER_LOGGER)
    try:
        setup_logging("text", "n1")
        setup_logging("json", "n1")
        assert len([f for f in server.filters if isinstance(f, MalformedRequestFilter)]) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for f in [f for f in server.filters if isinstance(f, MalformedRequestFilter)]:
            server.removeFilter(f)


def test_filter_leaves_other_errors_alone() -> None:
    flt = MalformedRequestFilter()
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        record = logging.LogRecord(AIOHTTP_SERVER_LOGGER, logging.ERROR, __file__, 1, "Error handling request", (),
                                   sys.exc_info())
    assert flt.filter(record) and record.levelno == logging.ERROR and record.exc_info is not None
