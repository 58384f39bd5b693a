"""One websocket connection: an `asyncio.Protocol` taken over from aiohttp after the upgrade.

Inbound bytes are parsed by the `websockets` library's Sans-I/O protocol (RFC 6455:
framing, masking, control frames, the close handshake, size limits; linear work per byte);
this module only joins the fragments of a message (a list, joined once at the last one),
checks that text is UTF-8 and hands whole messages to its `WsOwner`. The protocol object
is taken from a `ParserPool` when bytes arrive and given back as soon as it holds no part
of a frame or of a fragmented message (counted here from the frames it returns), so an
idle connection holds none.

Outbound, the connection writes frames built by the caller (`gateway.edge.wire.ws_frame`,
one frame for every recipient of an event). Frames queued with `queue` are coalesced and
written by the owner's flush (`WsOwner.mark_dirty`); `write` sends at once, after whatever
is queued, so bytes leave in call order. Backpressure: above `high_water` bytes buffered
by the transport, the connection is dropped (`WsOwner.on_overflow`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import SERVER, State
from websockets.protocol import Protocol as WsProtocol

log = logging.getLogger(__name__)

# bytes a connection waiting in the read backlog may buffer before its reading is paused
INBOX_PAUSE = 64 * 1024
# bytes parsed in one go: a larger read is parsed a slice per turn of the loop (through the
# owner's read backlog), so that no connection's bytes hold the loop for long
SLICE = 16 * 1024
# fragments of one message; a client sending more is refused (browsers and the Socket.IO
# clients send every message in one frame)
MAX_FRAGMENTS = 1024


class ParserPool:
    """Idle `websockets` protocol objects, lent to connections while they parse.

    A protocol object refers to itself through its parser generator, so one dropped after
    every read would be freed only by the cyclic garbage collector; and making one costs a
    few microseconds. A protocol given back is at a frame boundary, in the OPEN state, with
    no fragmented message and nothing buffered, so it parses another connection's frames
    exactly as a new one would; `size` bounds how many are kept.
    """

    def __init__(self, max_message: int, size: int = 64) -> None:
        self.max_message = max_message
        self.size = size
        self._idle: list[WsProtocol] = []

    def __len__(self) -> int:
        """Protocol objects kept idle."""
        return len(self._idle)

    def take(self) -> WsProtocol:
        if self._idle:
            return self._idle.pop()
        return WsProtocol(SERVER, state=State.OPEN, max_size=self.max_message)

    def give(self, proto: WsProtocol) -> None:
        if len(self._idle) < self.size and proto.state is State.OPEN and proto.parser_exc is None:
            self._idle.append(proto)


class WsOwner(Protocol):
    """What a connection reports to: the engine that owns its session."""

    high_water: int
    parsers: ParserPool

    def on_text(self, conn: WsConnection, text: str) -> None: ...

    def on_binary(self, conn: WsConnection, data: bytes) -> None: ...

    def on_closed(self, conn: WsConnection, why: str) -> None: ...

    def mark_dirty(self, conn: WsConnection) -> None: ...

    def on_overflow(self, conn: WsConnection) -> None: ...

    def read_admitted(self) -> bool: ...

    def defer_read(self, conn: WsConnection) -> None: ...

    def count_coalesced(self, frames: int) -> None: ...


class WsConnection(asyncio.Protocol):
    __slots__ = ("_fragments", "_fragments_kind", "_inbox", "_lost", "_owner", "_pending", "_pending_size", "_proto",
                 "_unparsed", "closed", "session", "transport")

    def __init__(self, owner: WsOwner, session: Any) -> None:
        self._owner = owner
        self.session = session  # the engine's session this connection carries (or probes for)
        self.transport: Any = None  # asyncio's or uvloop's transport
        self._proto: WsProtocol | None = None  # only while it holds part of a frame or message
        self._unparsed = 0  # bytes fed to `_proto` that no frame received so far accounts for
        self._fragments: list[bytes] | None = None  # a fragmented message being received
        self._fragments_kind = Opcode.TEXT
        self._inbox: bytearray | None = None  # bytes waiting in the owner's read backlog
        self._lost = False  # the connection ended behind bytes in the inbox
        self._pending: list[bytes] | None = None  # frames waiting for the owner's flush
        self._pending_size = 0
        self.closed = False

    # --- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        inbox = self._inbox
        if inbox is not None:  # waiting in the read backlog: behind what came before
            inbox += data
            if len(inbox) > INBOX_PAUSE and self.transport is not None:
                self.transport.pause_reading()
            return
        if len(data) <= SLICE and self._owner.read_admitted():
            self._receive(data)
        else:
            self._inbox = bytearray(data)
            self._owner.defer_read(self)

    def receive_deferred(self) -> None:
        """Parse a slice of what waited in the read backlog (the rest waits for a later
        turn), then the end of the connection if it came and nothing is left."""
        inbox = self._inbox
        if inbox is not None and not self.closed:
            chunk = bytes(inbox[:SLICE])
            del inbox[:SLICE]
            if inbox:
                self._owner.defer_read(self)
            else:
                self._inbox = None
            if len(inbox) <= INBOX_PAUSE and self.transport is not None and not self.transport.is_reading():
                self.transport.resume_reading()
            self._receive(chunk)
            if self._inbox is not None:
                return
        self._inbox = None
        if self._lost:
            self._lost = False
            self._ended("transport")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._pending = None
        self._pending_size = 0
        if self._inbox is not None:
            self._lost = True
            return
        self._ended("transport")

    def _ended(self, why: str) -> None:
        self._proto = None
        self._unparsed = 0
        self._fragments = None
        if not self.closed:
            self.closed = True
            self._owner.on_closed(self, why)

    # --- frames in ------------------------------------------------------------
    def _receive(self, data: bytes) -> None:
        # the heartbeat's pong passes here for every idle connection every ping interval,
        # so the common case (one whole unfragmented frame) is handled inline
        if self.closed:
            return
        proto = self._proto
        if proto is None:
            proto = self._proto = self._owner.parsers.take()
        proto.receive_data(data)
        unparsed = self._unparsed + len(data)
        for frame in proto.events_received():
            assert isinstance(frame, Frame)  # a protocol made OPEN yields frames only
            unparsed -= frame_size(frame)
            if self.closed:
                self._proto = None  # ended meanwhile: its parser, perhaps mid-message, is not reused
                return
            if frame.fin and frame.opcode is Opcode.TEXT and self._fragments is None:
                self._deliver(Opcode.TEXT, bytes(frame.data))  # the common case, without `_on_frame`
            else:
                self._on_frame(frame)
        if self.closed:  # the last frame ended the connection
            self._proto = None
            return
        self._unparsed = unparsed
        out = proto.data_to_send()
        if out:  # pongs to pings, the close handshake's reply, or the close after a protocol error
            self._write(b"".join(out))
        if proto.state is not State.OPEN:  # a close frame came, or a protocol error
            self._fail_closed(proto)
            return
        if unparsed == 0 and self._fragments is None:
            self._proto = None  # nothing partial held: an idle connection keeps no parser
            self._owner.parsers.give(proto)

    def _on_frame(self, frame: Frame) -> None:
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                self._fragments_kind = op
                return
            if self._fragments is not None:  # the protocol refuses this first; kept as a guard
                return
            self._deliver(op, bytes(frame.data))
        elif op is Opcode.CONT:
            frags = self._fragments
            if frags is None:  # the protocol refuses this first; kept as a guard
                return
            frags.append(bytes(frame.data))
            if len(frags) > MAX_FRAGMENTS:
                self.fail(CloseCode.POLICY_VIOLATION, "too many fragments")
                return
            if frame.fin:
                self._fragments = None
                self._deliver(self._fragments_kind, b"".join(frags))
        # PING is answered by the protocol (data_to_send); PONG and CLOSE need nothing here

    def _deliver(self, op: Opcode, payload: bytes) -> None:
        if op is Opcode.TEXT:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                return
            self._owner.on_text(self, text)
        else:
            self._owner.on_binary(self, payload)

    def _fail_closed(self, proto: WsProtocol) -> None:
        """The protocol ended the connection (a close frame received, or a protocol error)."""
        exc = proto.parser_exc
        if exc is not None:
            log.debug("websocket closed on a protocol error: %s", exc)
        if self.transport is not None:
            self.transport.close()
        self._ended("client" if exc is None else "transport")

    # --- bytes out ---------------------------------------------------------------
    def queue(self, frame: bytes) -> None:
        """Append a frame; the owner's flush writes it (coalesced with the others queued)."""
        if self.transport is None or self.closed:
            return
        pending = self._pending
        if pending is None:
            self._pending = [frame]
            self._owner.mark_dirty(self)
        else:
            pending.append(frame)
        self._pending_size += len(frame)
        if self._pending_size > self._owner.high_water:
            self.flush()

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._owner.count_coalesced(len(pending))
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = None
        self._pending_size = 0
        self._write(data)

    def write(self, frame: bytes) -> None:
        """Write now, after anything queued."""
        self._write(frame)

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None:
            return
        if self._pending:
            self.flush()
        t.write(data)
        if t.get_write_buffer_size() > self._owner.high_water:
            self._owner.on_overflow(self)

    def fail(self, code: int, reason: str) -> None:
        """Close the connection with a close frame (`code`, `reason`), now."""
        log.debug("websocket closed: %d %s", code, reason)
        if self.transport is not None:
            self._pending = None
            self._write(_close_frame(code, reason))
            self.transport.close()
        self._ended("transport")

    def close(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Write what is queued and a close frame, then close the TCP connection; the owner is
        not told (the caller closes the session)."""
        self.closed = True
        t = self.transport
        if t is None:
            return
        self._write(_close_frame(code, ""))
        t.close()

    def abort(self) -> None:
        """Drop the connection now, unless it is already closing (what it has to write, a
        close frame included, then still goes out)."""
        self.closed = True
        self._pending = None
        self._pending_size = 0
        t = self.transport
        if t is not None and not t.is_closing():
            t.abort()


def frame_size(frame: Frame) -> int:
    """The fewest bytes a client frame carrying `frame` takes on the wire (header, mask key,
    payload). A frame whose length field was not minimally encoded took more: then the
    count of unparsed bytes never returns to 0 and the connection keeps its parser, which
    costs memory, never correctness."""
    n = len(frame.data)
    return 6 + n + (0 if n < 126 else 2 if n < 65536 else 8)


def _close_frame(code: int, reason: str) -> bytes:
    return Frame(Opcode.CLOSE, Close(code, reason[:120]).serialize()).serialize(mask=False)
