"""One lean websocket connection: an `asyncio.Protocol` that engineio sees as a socket.

It stands in for engineio's `AsyncSocket` in `AsyncServer.sockets` (same attributes and
coroutines: `send`, `close`, `check_ping_timeout`, …), so python-socketio's packet and
namespace layer runs unchanged on top. It holds no task and no queue: inbound frames are
parsed in `data_received`; outbound bytes go through one per-connection buffer.

Per-connection order: fan-out frames are appended to `_pending` and written by the hub's
flush (within `flush_delay`); every direct write (acks, private events, CONNECT replies,
pings, close) first writes whatever is pending, so bytes leave in call order. Writes go
to the hub's send thread (`sender.py`, which keeps that order) where it runs, else to
the transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

import orjson
from engineio import packet as eio_packet

from gateway.transport.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameParser,
    close_frame,
    encode_frame,
)

if TYPE_CHECKING:
    from gateway.transport.hub import LeanTransport

log = logging.getLogger(__name__)

# bytes a connection waiting in the read backlog may buffer before its reading is paused
INBOX_PAUSE = 64 * 1024


def json_packet_frame(head: bytes, namespace: str, data: Any, ack_id: int | None = None) -> bytes | None:
    """A Socket.IO EVENT (`head` b"42") or ACK (b"43") as one text frame, encoded straight
    from orjson: what `JsonOncePacket` and engineio's packet write, without building either.
    None for a payload JSON cannot carry (bytes: the stock path sends attachments)."""
    try:
        body = orjson.dumps(data)
    except TypeError:
        return None
    if namespace != "/":
        head += namespace.encode() + b","
    if ack_id is not None:
        head += str(ack_id).encode()
    return encode_frame(head + body)


def packet_frame(pkt: Any) -> bytes:
    """An engine.io packet as one websocket frame (text, or binary for binary payloads)."""
    encoded = pkt.encode()
    if isinstance(encoded, bytes):
        return encode_frame(encoded, OP_BINARY)
    return encode_frame(encoded.encode("utf-8"), OP_TEXT)


class LeanSocket(asyncio.Protocol):
    # Per-connection state is kept small (thousands of idle connections): the frame parser
    # exists only while a frame is incomplete, the write buffer only while something is
    # queued, the user session on first use, and ping times are floats shared by every
    # socket of one sweep of the hub's timer.
    __slots__ = (
        "_hub", "_inbox", "_lost", "_parser", "_pending", "_pending_size", "_session", "closed", "closing",
        "last_ping", "ping_due", "sid", "transport",
    )

    # engineio reads these; a lean socket is a connected websocket from the start
    connected = True
    upgraded = True
    upgrading = False

    def __init__(self, hub: LeanTransport, sid: str, max_message: int) -> None:
        self._hub = hub
        self.sid = sid
        self.transport: Any = None  # the asyncio or uvloop transport
        self._parser: FrameParser | None = None  # only while a frame is incomplete
        # bytes read but not parsed yet: only while this socket waits in the hub's read
        # backlog (`LeanTransport.read_admitted`), and whether its end waits behind them
        self._inbox: bytearray | None = None
        self._lost = False
        self._pending: list[bytes] | None = None  # fan-out frames waiting for the hub's flush
        self._pending_size = 0
        self.closing = False
        self.closed = False
        self._session: dict[str, Any] | None = None
        self.last_ping: float | None = None  # when an unanswered ping was sent
        self.ping_due = hub.next_ping_due()

    @property
    def session(self) -> dict[str, Any]:
        """engineio's per-socket user session, allocated on first use."""
        if self._session is None:
            self._session = {}
        return self._session

    @session.setter
    def session(self, value: dict[str, Any]) -> None:
        self._session = value

    # --- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        inbox = self._inbox
        if inbox is not None:  # waiting in the read backlog: behind what came before
            inbox += data
            if len(inbox) > INBOX_PAUSE and self.transport is not None:
                self.transport.pause_reading()  # resumed once the inbox is parsed
            return
        if self._hub.read_admitted():
            self._receive(data)
        else:
            self._inbox = bytearray(data)
            self._hub.defer_read(self)

    def receive_deferred(self) -> None:
        """Parse what waited in the read backlog (the hub's turn for it), then the end of
        the connection if it came meanwhile."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None and not self.closing and not self.closed:
            if len(inbox) > INBOX_PAUSE and self.transport is not None:
                self.transport.resume_reading()
            self._receive(bytes(inbox))
        if self._lost:
            self._lost = False
            self._ended()

    def _receive(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            parser = FrameParser(self._hub.max_message)
        try:
            frames = parser.feed(data)
        except FrameError as exc:
            self._parser = None
            self._fail(exc.code, str(exc))
            return
        self._parser = None if parser.idle else parser
        for opcode, payload in frames:
            if self.closing or self.closed:
                return
            if opcode == OP_TEXT:
                self._on_text(payload.decode("utf-8", "replace"))
            elif opcode == OP_BINARY:
                self._hub.on_message(self, payload)
            elif opcode == OP_PING:
                self._write(encode_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self._write(close_frame(CLOSE_NORMAL))
                self._hub.on_gone(self, "client")
            # OP_PONG: nothing to do (engine.io pings are packets, not frames)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._pending = None
        self._pending_size = 0
        if self._inbox is not None:  # the end waits for what was read before it
            self._lost = True
            return
        self._ended()

    def _ended(self) -> None:
        """The connection is gone and everything it sent is parsed: the hub's turn."""
        self._parser = None
        if not self.closing and not self.closed:
            self._hub.on_gone(self, "transport")

    # --- engine.io packets in ------------------------------------------------
    def _on_text(self, text: str) -> None:
        if not text:
            return
        kind = text[0]
        if kind == "4":
            self._hub.on_message(self, text[1:])
        elif kind == "3":
            self.last_ping = None
        elif kind == "2":
            self._write(encode_frame(b"3" + text[1:].encode(), OP_TEXT))
        elif kind == "1":
            self._hub.on_gone(self, "client")
        # "5" (upgrade) and "6" (noop) carry nothing for a websocket-only connection

    # --- bytes out -------------------------------------------------------------
    def queue(self, frame: bytes) -> None:
        """Append a pre-built frame; the hub flushes it within its flush delay."""
        if self.transport is None or self.closing:
            return
        pending = self._pending
        if pending is None:
            self._pending = [frame]
            self._hub.mark_dirty(self)
        else:
            pending.append(frame)
        self._pending_size += len(frame)
        if self._pending_size > self._hub.high_water:
            self.flush()

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        n = len(pending)
        data = pending[0] if n == 1 else b"".join(pending)
        self._hub.frames_coalesced += n
        self._hub.writes_coalesced += 1
        self._pending = None
        self._pending_size = 0
        self._write(data)

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None:
            return
        if self._pending:
            self.flush()
        sender = self._hub.sender
        if sender is None or not sender.write(self, t, data):
            self._write_transport(t, data)

    def _write_transport(self, t: Any, data: bytes) -> None:
        t.write(data)
        if t.get_write_buffer_size() > self._hub.high_water:
            self._hub.on_overflow(self)

    # --- from the send thread (gateway/transport/sender.py) ---------------------------
    def write_diverted(self, rest: bytes) -> None:
        """Bytes the socket would not take on the send thread, in order: the transport
        buffers them and writes them when the socket becomes writable. A connection being
        closed loses them (its client resumes by `(epoch, seq)` after reconnecting)."""
        t = self.transport
        if t is not None and not t.is_closing():
            self._write_transport(t, rest)

    def write_failed(self, err: int) -> None:
        """The send thread's write failed (the peer reset or went away): as uvloop does on
        a failed write, the connection is closed."""
        log.debug("websocket %s: write failed: %s", self.sid, os.strerror(err))
        t = self.transport
        if t is not None:
            t.abort()

    def write_frame(self, frame: bytes) -> None:
        """Write now, after anything pending (the engine.io OPEN packet, control frames)."""
        self._write(frame)

    def ping_tick(self, now: float, next_due: float, may_ping: bool = True) -> bool:
        """Called by the hub's shared timer (`next_due` is `now` + the ping interval, one
        float for the whole sweep); closes on a missing pong, and sends a ping when one is
        due and `may_ping` (else it stays due). Returns whether it pinged."""
        if self.last_ping is not None:
            if now - self.last_ping > self._hub.ping_timeout:
                self._hub.on_gone(self, "ping_timeout")
            return False
        if may_ping and now >= self.ping_due and self.transport is not None:
            self.last_ping = now
            self.ping_due = next_due
            self._write(b"\x81\x012")
            return True
        return False

    def abort(self) -> None:
        t = self.transport
        self._pending = None
        self._pending_size = 0
        if t is not None:
            t.abort()

    def close_transport(self, code: int = CLOSE_NORMAL) -> None:
        t = self.transport
        if t is None:
            return
        self._write(close_frame(code))
        t.close()

    def _fail(self, code: int, message: str) -> None:
        log.info("websocket %s: %s", self.sid, message)
        t = self.transport
        if t is not None:
            self._pending = None
            self._write(close_frame(code, message))
            t.close()
        self._hub.on_gone(self, "transport")

    # --- the engineio socket interface ------------------------------------------
    async def send(self, pkt: Any) -> None:
        """Acks and private packets join the same buffer as fan-out frames (one ordered
        stream per connection, flushed within the hub's flush delay), so an ack and the
        `message:new` of the same send usually leave in one write."""
        if self.closed:
            return
        if self.closing:
            self._write(packet_frame(pkt))
        else:
            self.queue(packet_frame(pkt))

    async def check_ping_timeout(self) -> bool:
        return not self.closed

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        await self._hub.server._trigger_event(
            "disconnect", self.sid, reason or self._hub.server.reason.SERVER_DISCONNECT, run_async=False)
        if not abort:
            self._write(packet_frame(eio_packet.Packet(eio_packet.CLOSE)))
        self.closed = True
        self.close_transport(CLOSE_NORMAL if not abort else CLOSE_GOING_AWAY)
        self._hub.forget(self)
