"""RFC 6455 framing: the upgrade accept key, server frames (unmasked) and a client frame parser."""

from __future__ import annotations

import base64
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009


class FrameError(Exception):
    """The peer broke the websocket protocol; `code` is the close code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def encode_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, unmasked frame (what a server sends)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return encode_frame(struct.pack("!H", code) + reason.encode()[:120], OP_CLOSE)


def unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    key = int.from_bytes(mask * (n // 4 + 1), "little") & ((1 << (8 * n)) - 1)
    return (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")


class FrameParser:
    """Incremental parser of client frames (masked, possibly fragmented).

    `feed` returns complete messages as (opcode, payload); control frames come out as they
    arrive, data messages once their last fragment is in.
    """

    __slots__ = ("_buf", "_frag", "_frag_op", "_max")

    def __init__(self, max_message: int) -> None:
        self._buf = b""
        self._frag: list[bytes] | None = None
        self._frag_op = 0
        self._max = max_message

    @property
    def idle(self) -> bool:
        """No partial frame nor fragmented message held (the parser can be dropped)."""
        return not self._buf and self._frag is None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            fin, opcode = b0 & 0x80, b0 & 0x0F
            if b0 & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension negotiated)")
            if not b1 & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            n = b1 & 0x7F
            hdr = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 4], "big")
                hdr = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                hdr = 10
            if n > self._max:
                raise FrameError(CLOSE_TOO_BIG, "message too big")
            if end - pos < hdr + 4 + n:
                break
            mask = buf[pos + hdr:pos + hdr + 4]
            start = pos + hdr + 4
            payload = unmask(buf[start:start + n], mask)
            pos = start + n
            if opcode >= 0x8:
                if not fin or n > 125:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "bad control frame")
                out.append((opcode, payload))
                continue
            if opcode == OP_CONT:
                if self._frag is None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation without a start")
                self._frag.append(payload)
                if sum(len(p) for p in self._frag) > self._max:
                    raise FrameError(CLOSE_TOO_BIG, "message too big")
                if fin:
                    out.append((self._frag_op, b"".join(self._frag)))
                    self._frag = None
                continue
            if opcode not in (OP_TEXT, OP_BINARY):
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if self._frag is not None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            if fin:
                out.append((opcode, payload))
            else:
                self._frag, self._frag_op = [payload], opcode
        self._buf = buf[pos:] if pos < end else b""
        return out
