"""The Engine.IO v4 and Socket.IO v5 wire formats: packet encoding and decoding.

Engine.IO packets are a type digit and a payload (`4hello`); HTTP long-polling carries
several in one body, separated by the record separator `\\x1e`. A Socket.IO packet rides in
an Engine.IO MESSAGE: a type digit, an optional `/namespace,`, an optional ack id and an
optional JSON payload (`2/visitor,7["message:send",{…}]`). JSON is parsed by orjson (and
the standard library's decoder for what orjson refuses, `loads`); every other step here is
a bounded scan of the packet's first bytes.

Server-to-client websocket frames are built here too (`ws_frame`): a server's frames are
unmasked, so one frame can be written to every recipient of an event.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import orjson

# Engine.IO packet types
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0123456"
SEPARATOR = "\x1e"

# Socket.IO packet types
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)

MAX_NAMESPACE = 128  # characters of a namespace name we read before refusing the packet
MAX_ACK_DIGITS = 15


class PacketError(ValueError):
    """A packet that does not decode; the connection that sent it is closed."""


def ws_frame(payload: bytes, binary: bool = False) -> bytes:
    """One final, unmasked websocket frame (RFC 6455 §5.2) carrying `payload`."""
    first = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def encode_payload(packets: list[str]) -> str:
    """Engine.IO packets as one HTTP long-polling body."""
    return SEPARATOR.join(packets)


def decode_payload(body: str, max_packets: int) -> list[str]:
    """The packets of a long-polling POST body. Raises PacketError on an empty packet, an
    unknown type, a binary (`b…`) packet or more than `max_packets` packets."""
    parts = body.split(SEPARATOR, max_packets)
    if len(parts) > max_packets:
        raise PacketError(f"more than {max_packets} packets in one request")
    for p in parts:
        if not p or p[0] not in "0123456":
            raise PacketError("not an Engine.IO packet")
    return parts


def open_packet(sid: str, upgrades: list[str], ping_interval: float, ping_timeout: float, max_payload: int) -> str:
    """The handshake's OPEN packet; intervals advertised in whole milliseconds."""
    return OPEN + orjson.dumps({
        "sid": sid, "upgrades": upgrades, "pingInterval": round(ping_interval * 1000),
        "pingTimeout": round(ping_timeout * 1000), "maxPayload": max_payload,
    }).decode()


@dataclass(frozen=True, slots=True)
class SioPacket:
    """A decoded Socket.IO packet."""

    type: int
    namespace: str
    id: int | None
    data: Any


# type digit, optional "/namespace," (no query string; the comma may be left out when nothing
# follows), optional ack id
_HEAD = re.compile(rf"([0-6])(?:(/[^,?]{{0,{MAX_NAMESPACE}}})(?:,|$))?([0-9]{{0,{MAX_ACK_DIGITS}}})")


def decode_sio(text: str) -> SioPacket:
    """One Socket.IO packet from the text of an Engine.IO MESSAGE. Raises PacketError for
    anything that is not a well-formed packet in the v5 format: an unknown type, a
    namespace without its comma, JSON that does not parse (or nests deeper than orjson's
    limit), binary packets (attachments are not accepted), a payload of the wrong kind for
    its type."""
    m = _HEAD.match(text)
    if m is None:
        raise PacketError("not a Socket.IO packet")
    ptype = int(m.group(1))
    namespace = m.group(2) or "/"
    if m.group(2) is None and text[m.end(1):m.end(1) + 1] == "/":
        raise PacketError("bad namespace")
    digits = m.group(3)
    rest = text[m.end():]
    if ptype in (BINARY_EVENT, BINARY_ACK):
        raise PacketError("binary packets are not accepted")
    data: Any = loads(rest) if rest else None
    ack_id = int(digits) if digits else None
    if ptype == EVENT:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise PacketError("an event is a non-empty array starting with its name")
    elif ptype == ACK:
        if ack_id is None or not isinstance(data, list):
            raise PacketError("an ack is an id and an array")
    elif ptype == CONNECT:
        if data is not None and not isinstance(data, dict):
            raise PacketError("CONNECT carries an object or nothing")
        if ack_id is not None:
            raise PacketError("CONNECT takes no id")
    elif ptype == DISCONNECT:
        if rest or ack_id is not None:
            raise PacketError("DISCONNECT carries nothing")
    else:  # CONNECT_ERROR: only servers send it
        raise PacketError("CONNECT_ERROR comes from servers")
    return SioPacket(ptype, namespace, ack_id, data)


def loads(text: str) -> Any:
    """JSON by orjson; what orjson refuses is tried once more with the standard library's
    decoder, which also accepts escaped lone surrogates (valid JSON that JavaScript clients
    send) and the `NaN`/`Infinity` literals Python clients write. Raises PacketError for
    what neither accepts and for documents nested deeper than orjson's limit (1,024)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "ecursion" in str(exc):  # nested deeper than orjson's limit
            raise PacketError("JSON nested too deep") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise PacketError("bad JSON") from None


def sio_head(ptype: int, namespace: str, ack_id: int | None = None) -> str:
    """The text before a Socket.IO packet's JSON payload, behind the Engine.IO MESSAGE type."""
    head = MESSAGE + str(ptype)
    if namespace != "/":
        head += namespace + ","
    if ack_id is not None:
        head += str(ack_id)
    return head


def encode_sio(ptype: int, namespace: str, data: Any = None, ack_id: int | None = None) -> bytes:
    """An Engine.IO MESSAGE holding one Socket.IO packet, as UTF-8 bytes. Raises TypeError
    for a payload JSON cannot carry."""
    head = sio_head(ptype, namespace, ack_id).encode()
    if data is None:
        return head
    return head + orjson.dumps(data)
