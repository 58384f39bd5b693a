"""Raw Engine.IO v4 clients for the conformance tests: every packet is visible.

`PollingSession` speaks HTTP long-polling with plain aiohttp requests, `WsSession` a
websocket with aiohttp's websocket client. Both offer `send` (Engine.IO packets, already
encoded), `recv` (the next packet that is not a ping; pings are answered with a pong as a
client must) and `wait_closed` (the session's end, as the transport shows it). Every wait
is bounded by `WAIT`: a server that never answers fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import aiohttp

EIO_PATH = "/socket.io/"
SEP = "\x1e"  # Engine.IO v4 payload separator (record separator)
WAIT = 3.0  # seconds: the most any test waits for a packet, an answer or a close


class Closed(Exception):
    """The session ended; `how` says how the transport showed it."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


def eio_url(base: str, **query: str | None) -> str:
    """The Engine.IO endpoint of `base` with `query` (None values left out, in order)."""
    q = {k: v for k, v in query.items() if v is not None}
    return f"{base}{EIO_PATH}?{urlencode(q)}"


def ws_base(base: str) -> str:
    return "ws" + base.removeprefix("http")


def header_sent_trace() -> aiohttp.TraceConfig:
    """A trace that sets `trace_request_ctx.sent` (an asyncio.Event) once a request's
    headers are written: the moment a body-less request is on the wire."""
    tc = aiohttp.TraceConfig()

    async def on_sent(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: object) -> None:
        sent = getattr(ctx.trace_request_ctx, "sent", None)
        if sent is not None:
            sent.set()

    tc.on_request_headers_sent.append(on_sent)
    return tc


@dataclass
class Answer:
    status: int
    body: str
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)

    def shape(self) -> tuple[int, str, Any]:
        """(status, media type, JSON body — or the raw body when it is not JSON): one value to
        compare with the expected answer, so a failure shows all three."""
        try:
            body: Any = self.json()
        except ValueError:
            body = self.body
        return self.status, self.content_type.split(";")[0].strip(), body


async def request(http: aiohttp.ClientSession, method: str, url: str, body: str | bytes | None = None,
                  **kw: Any) -> Answer:
    """The answer to one request; an AssertionError naming the request when none comes
    within WAIT seconds."""
    try:
        async with asyncio.timeout(WAIT):
            async with http.request(method, url, data=body, **kw) as r:
                return Answer(r.status, await r.text(errors="replace"), r.headers.get("Content-Type", ""))
    except TimeoutError:
        raise AssertionError(f"no answer to {method} {url} (body {body!r}) within {WAIT} s") from None


async def barrier(http: aiohttp.ClientSession, base: str) -> None:
    """One request round trip to the server (a long-polling GET for a session that does not
    exist, answered at once with 400): everything written to the server before has been
    read and dispatched by the time the answer arrives (the server serves requests in order
    of arrival on one event loop)."""
    await request(http, "GET", eio_url(base, EIO="4", transport="polling", sid="conformance-barrier"))


def _retrieve(task: asyncio.Task[Answer]) -> None:
    if not task.cancelled():
        task.exception()


def parse_open(packet: str) -> dict[str, Any]:
    assert packet.startswith("0"), f"expected an OPEN packet (0...), got {packet!r}"
    value = json.loads(packet[1:])
    assert isinstance(value, dict), packet
    return value


@dataclass
class PollingSession:
    http: aiohttp.ClientSession
    base: str
    handshake: dict[str, Any]
    _queue: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> PollingSession:
        a = await request(http, "GET", eio_url(base, EIO="4", transport="polling"))
        assert a.status == 200, f"handshake: expected 200, got {a.status} {a.body!r}"
        return cls(http, base, parse_open(a.body))

    @property
    def sid(self) -> str:
        return str(self.handshake["sid"])

    @property
    def url(self) -> str:
        return eio_url(self.base, EIO="4", transport="polling", sid=self.sid)

    async def get(self) -> Answer:
        return await request(self.http, "GET", self.url)

    async def post(self, body: str | bytes) -> Answer:
        data = body.encode() if isinstance(body, str) else body
        return await request(self.http, "POST", self.url, data,
                             headers={"Content-Type": "text/plain;charset=UTF-8"})

    async def pending_get(self) -> asyncio.Task[Answer]:
        """A long-poll GET the server has received (written, then a later request answered),
        still waiting for its answer."""
        sent = asyncio.Event()
        task = asyncio.create_task(request(self.http, "GET", self.url, trace_request_ctx=SimpleNamespace(sent=sent)))
        task.add_done_callback(_retrieve)  # a test that fails before awaiting it logs no "never retrieved"
        async with asyncio.timeout(WAIT):
            await sent.wait()
        await barrier(self.http, self.base)
        assert not task.done(), f"the long-poll GET was answered at once: {task.result()!r}"
        return task

    async def send(self, *packets: str) -> None:
        """POST `packets` as one payload; its answer must be 200 (its body is checked by
        test_polling, not here)."""
        a = await self.post(SEP.join(packets))
        assert a.status == 200, f"POST {packets!r}: expected 200, got {a.shape()}"

    async def recv(self) -> str:
        """The next packet other than a ping or a noop (a ping is answered with a pong).
        Closed when a GET is answered 400 or with a close packet."""
        while not self._queue:
            a = await self.get()
            if a.status != 200:
                raise Closed(f"GET answered {a.status} {a.body!r}")
            for p in a.body.split(SEP):
                if p == "2":
                    await self.send("3")
                elif p == "1":
                    raise Closed("close packet")
                elif p != "6":
                    self._queue.append(p)
        return self._queue.pop(0)

    async def wait_closed(self) -> list[str]:
        """The packets received until the session's end, which must be shown the way the
        reference server shows it: a GET answered with a payload ending in a close packet
        ("1"), after which a GET is answered 400."""
        seen: list[str] = []
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            assert asyncio.get_running_loop().time() < deadline, f"no close within {WAIT} s; received {seen!r}"
            a = await self.get()
            assert a.status == 200, (f"the session ended without a close packet: GET answered "
                                     f"{a.status} {a.body!r} after {seen!r}")
            packets = a.body.split(SEP)
            seen += packets
            if packets[-1] == "1":
                break
            if "2" in packets:
                await self.post("3")
        after = await self.get()
        assert after.status == 400, f"a GET after the close packet: expected 400, got {after.status} {after.body!r}"
        return seen


@dataclass
class WsSession:
    ws: aiohttp.ClientWebSocketResponse
    handshake: dict[str, Any]

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, base: str,
                      **query: str | None) -> aiohttp.ClientWebSocketResponse:
        q: dict[str, str | None] = {"EIO": "4", "transport": "websocket", **query}
        try:
            async with asyncio.timeout(WAIT):
                return await http.ws_connect(eio_url(ws_base(base), **q), autoping=True, autoclose=True)
        except TimeoutError:
            raise AssertionError(f"no answer to the websocket handshake {q} within {WAIT} s") from None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> WsSession:
        ws = await cls.connect(http, base)
        s = cls(ws, {})
        s.handshake = parse_open(await s.frame())
        return s

    @property
    def sid(self) -> str:
        return str(self.handshake["sid"])

    async def frame(self) -> str:
        """The next text frame (an Engine.IO packet); Closed when the connection closes."""
        try:
            async with asyncio.timeout(WAIT):
                msg = await self.ws.receive()
        except TimeoutError:
            raise AssertionError(f"no frame and no close within {WAIT} s") from None
        if msg.type == aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type == aiohttp.WSMsgType.BINARY:
            raise AssertionError(f"unexpected binary frame {msg.data!r}")
        raise Closed(f"websocket {msg.type.name} {msg.data!r}")

    async def send(self, *packets: str) -> None:
        for p in packets:
            await self.ws.send_str(p)

    async def recv(self) -> str:
        """The next packet other than a ping or a noop (a ping is answered with a pong)."""
        while True:
            p = await self.frame()
            if p == "2":
                await self.send("3")
            elif p != "6":
                return p

    async def wait_closed(self) -> list[str]:
        """The packets received until the connection closes."""
        seen: list[str] = []
        while True:
            try:
                seen.append(await self.frame())
            except Closed:
                return seen

    async def close(self) -> None:
        await self.ws.close()


Session = PollingSession | WsSession


async def open_session(http: aiohttp.ClientSession, base: str, transport: str) -> Session:
    if transport == "polling":
        return await PollingSession.open(http, base)
    return await WsSession.open(http, base)


def now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class SioPacket:
    """A Socket.IO v5 packet as the default parser encodes it inside an Engine.IO message:
    `4<type>[<namespace>,][<ack id>][<JSON>]`."""

    type: int
    nsp: str
    ack: int | None
    data: Any


def parse_sio(packet: str) -> SioPacket:
    assert packet[:1] == "4" and packet[1:2].isdigit(), f"expected a Socket.IO packet (4<type>...), got {packet!r}"
    kind, rest = int(packet[1]), packet[2:]
    nsp = "/"
    if rest.startswith("/"):
        nsp, _, rest = rest.partition(",")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    ack = int(rest[:digits]) if digits else None
    body = rest[digits:]
    return SioPacket(kind, nsp, ack, json.loads(body) if body else None)


async def join_visitor(s: Session, auth: str) -> SioPacket:
    """CONNECT to /visitor; the CONNECT answer (the `session` event that follows is read too)."""
    await s.send(f"40/visitor,{auth}")
    answer = parse_sio(await s.recv())
    if answer.type == 0:
        session = parse_sio(await s.recv())
        assert (session.type, session.nsp, session.data[0]) == (2, "/visitor", "session"), session
    return answer
