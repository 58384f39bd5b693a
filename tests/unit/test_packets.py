"""JsonOncePacket encodes exactly as the stock Socket.IO packet."""

from __future__ import annotations

from typing import Any

import pytest
from socketio import packet as sio_packet

from gateway.realtime.packets import JsonOncePacket

PAYLOADS: list[Any] = [
    ["message:new", {"text": "Xin chào 👋", "seq": 1, "nested": [{"a": None, "b": 1.5, "c": True}]}],
    {"ok": True, "message": {"id": "x" * 32, "attachments": []}},
    [],
    ["ev"],
    "plain",
    42,
]


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("ptype", [sio_packet.EVENT, sio_packet.ACK])
@pytest.mark.parametrize("namespace", [None, "/", "/agent"])
@pytest.mark.parametrize("pid", [None, 0, 17])
def test_same_bytes_as_stock(data: Any, ptype: int, namespace: str | None, pid: int | None) -> None:
    ours = JsonOncePacket(ptype, data=data, namespace=namespace, id=pid)
    stock = sio_packet.Packet(ptype, data=data, namespace=namespace, id=pid)
    assert ours.encode() == stock.encode()
    assert ours.packet_type == stock.packet_type


def test_binary_payloads_take_the_stock_path() -> None:
    data = ["file", {"name": "a.png", "bytes": b"\x00\x01"}]
    ours = JsonOncePacket(sio_packet.EVENT, data=data, namespace="/agent")
    stock = sio_packet.Packet(sio_packet.EVENT, data=data, namespace="/agent")
    assert ours.packet_type == sio_packet.BINARY_EVENT == stock.packet_type
    assert ours.encode() == stock.encode()


def test_decoding_is_unchanged() -> None:
    p = JsonOncePacket(encoded_packet='2/agent,5["message:send",{"text":"hi"}]')
    assert (p.packet_type, p.namespace, p.id) == (sio_packet.EVENT, "/agent", 5)
    assert p.data == ["message:send", {"text": "hi"}]
