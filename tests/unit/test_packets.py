"""JsonOncePacket encodes what the stock Socket.IO packet encodes (orjson instead of json)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from socketio import packet as sio_packet

from gateway.realtime.packets import JsonOncePacket, OrjsonCodec, decode_event

PAYLOADS: list[Any] = [
    ["message:new", {"text": "Xin chào 👋 — Tiếng Việt", "seq": 1, "nested": [{"a": None, "b": 1.5, "c": True}]}],
    {"ok": True, "message": {"id": "x" * 32, "attachments": [], "created_at": 1732600000.123456}},
    ["message:new", {"text": 'quotes " and \\ and \n newline \t tab \x01 control', "seq": 2**62}],
    [],
    ["ev"],
    "plain",
]


def _ascii(data: Any) -> bool:
    return json.dumps(data).isascii() and "\\u" not in json.dumps(data) and "e+" not in json.dumps(data)


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("ptype", [sio_packet.EVENT, sio_packet.ACK])
@pytest.mark.parametrize("namespace", [None, "/", "/agent"])
@pytest.mark.parametrize("pid", [None, 0, 17])
def test_decodes_as_stock(data: Any, ptype: int, namespace: str | None, pid: int | None) -> None:
    ours = JsonOncePacket(ptype, data=data, namespace=namespace, id=pid)
    stock = sio_packet.Packet(ptype, data=data, namespace=namespace, id=pid)
    assert ours.packet_type == stock.packet_type
    encoded, stock_encoded = ours.encode(), stock.encode()
    # what a stock client decodes from our text is what it decodes from stock text
    back, stock_back = sio_packet.Packet(encoded_packet=encoded), sio_packet.Packet(encoded_packet=stock_encoded)
    assert (back.packet_type, back.namespace, back.id, back.data) == \
        (stock_back.packet_type, stock_back.namespace, stock_back.id, stock_back.data)
    assert json.dumps(back.data) == json.dumps(data)
    if _ascii(data):
        assert encoded == stock_encoded


def test_non_ascii_text_is_utf8_not_escaped() -> None:
    data = ["message:new", {"text": "Xin chào"}]
    encoded = JsonOncePacket(sio_packet.EVENT, data=data, namespace="/agent").encode()
    assert encoded == '2/agent,["message:new",{"text":"Xin chào"}]'
    assert len(encoded.encode()) < len(sio_packet.Packet(sio_packet.EVENT, data=data, namespace="/agent").encode())


def test_binary_payloads_take_the_stock_path() -> None:
    data = ["file", {"name": "a.png", "bytes": b"\x00\x01"}]
    ours = JsonOncePacket(sio_packet.EVENT, data=data, namespace="/agent")
    stock = sio_packet.Packet(sio_packet.EVENT, data=data, namespace="/agent")
    assert ours.packet_type == sio_packet.BINARY_EVENT == stock.packet_type
    assert ours.encode() == stock.encode()


def test_what_orjson_cannot_encode_takes_the_stock_encoder() -> None:
    data = ["ev", {"big": 2**70}]  # beyond 64 bits: orjson refuses, the stdlib writes it
    ours = JsonOncePacket(sio_packet.EVENT, data=data)
    assert ours.encode() == sio_packet.Packet(sio_packet.EVENT, data=data).encode()


def test_decoding_is_unchanged() -> None:
    p = JsonOncePacket(encoded_packet='2/agent,5["message:send",{"text":"hi"}]')
    assert (p.packet_type, p.namespace, p.id) == (sio_packet.EVENT, "/agent", 5)
    assert p.data == ["message:send", {"text": "hi"}]


EVENT_TEXTS = [
    '2["message:send",{"text":"hi"}]',
    '2/visitor,["message:send",{"conversation_id":"c","client_id":"a-b-c","text":"xin chào, 1-2 ngày"}]',
    '2/visitor,17["message:send",{"text":"hi"}]',
    '2/,0["ev"]',
    "20017[]",
    '2/agent,123456789012345["ev",1]',
    '2/agent,1234567890123456["ev"]',  # 16 digits: the packet class
    '2/agent?x=1,5["ev"]',  # a query on the namespace: the packet class
    '21-["ev",{"_placeholder":true,"num":0}]',  # an attachment count: the packet class
    "2/agent,5",  # no payload
    "2/agent",  # no comma
    '2/agent,5{"a":1}',  # not an array
    '2/agent,5"ev"',
    "2",
    '2["a",NaN]',
]


@pytest.mark.parametrize("text", EVENT_TEXTS)
def test_decode_event_decodes_as_the_packet_class_or_defers_to_it(text: str) -> None:
    fast = decode_event(text)
    pkt = JsonOncePacket(encoded_packet=text)
    if fast is not None:
        assert fast[0] == pkt.namespace and fast[1] == pkt.id, (fast, text)
        assert json.dumps(fast[2]) == json.dumps(pkt.data)
    else:  # only the uncommon forms are left to the packet class
        assert not text.startswith('2/visitor,17["') and not text.startswith('2["')


@pytest.mark.parametrize("text", ['2/visitor,3["a",', '2/visitor,3[nope]', '2["a"', "2[\x00]"])
def test_decode_event_refuses_what_the_packet_class_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        JsonOncePacket(encoded_packet=text)
    with pytest.raises(ValueError):
        decode_event(text)


@pytest.mark.parametrize("text", ['["a",NaN]', '["a","\\ud800"]', '[1e999]'])
def test_what_orjson_refuses_to_decode_decodes_as_stock(text: str) -> None:
    ours, stock = OrjsonCodec.loads(text), sio_packet.Packet.json.loads(text)
    assert json.dumps(ours) == json.dumps(stock)


def test_an_integer_beyond_64_bits_decodes_as_a_float() -> None:
    # the one documented difference: stock gives an int (or refuses > 100 digits); either
    # way the protocol's range-checked integer fields refuse it as bad_request
    assert isinstance(OrjsonCodec.loads("[" + "9" * 101 + "]")[0], float)


@pytest.mark.parametrize("text", ['["a",', "nope", '{"a":1'])
def test_what_stock_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        sio_packet.Packet.json.loads(text)
    with pytest.raises(ValueError):
        OrjsonCodec.loads(text)


@pytest.mark.parametrize("namespace", ["/", "/agent", "/visitor"])
@pytest.mark.parametrize("data", [{"text": "Xin chào 👋", "seq": 3, "attachments": []}, {}])
def test_the_lean_fanout_frame_is_the_packet_frame(namespace: str, data: dict[str, Any]) -> None:
    from engineio import packet as eio_packet

    from gateway.transport.emitter import LeanEmitter
    from gateway.transport.socket import packet_frame

    pkt = JsonOncePacket(sio_packet.EVENT, data=["message:new", data], namespace=namespace)
    assert LeanEmitter._frame(namespace, "message:new", data) == \
        packet_frame(eio_packet.Packet(eio_packet.MESSAGE, pkt.encode()))


def test_the_lean_fanout_frame_leaves_binary_payloads_to_the_stock_path() -> None:
    from gateway.transport.emitter import LeanEmitter

    assert LeanEmitter._frame("/agent", "file", {"bytes": b"\x00"}) is None


@pytest.mark.parametrize("namespace", ["/", "/agent"])
@pytest.mark.parametrize("ack_id", [0, 7, 12345])
def test_the_lean_ack_frame_is_the_packet_frame(namespace: str, ack_id: int) -> None:
    from engineio import packet as eio_packet

    from gateway.transport.socket import json_packet_frame, packet_frame

    data = [{"ok": True, "message": {"text": "Cảm ơn", "seq": 9}}]
    pkt = JsonOncePacket(sio_packet.ACK, data=data, namespace=namespace, id=ack_id)
    assert json_packet_frame(b"43", namespace, data, ack_id) == \
        packet_frame(eio_packet.Packet(eio_packet.MESSAGE, pkt.encode()))
    assert json_packet_frame(b"43", namespace, [b"\x00"], ack_id) is None


@pytest.mark.parametrize("namespaces", [["/agent"], ["/agent", "/agent", "/agent"], ["/agent", "/visitor", "/agent"]],
                         ids=["one", "one-namespace", "mixed"])
async def test_lean_fanout_gives_each_connection_its_namespace_packet(namespaces: list[str]) -> None:
    """Connections that are not lean sockets (long-polling) get the packet through engineio,
    encoded for their own namespace, in the order given."""
    from typing import cast

    from socketio import AsyncServer

    from gateway.realtime.context import Conn
    from gateway.transport.emitter import LeanEmitter

    sio = AsyncServer(async_mode="aiohttp", serializer=JsonOncePacket)
    sent: list[tuple[str, str]] = []
    for i in range(len(namespaces)):
        sio.eio.sockets[f"e{i}"] = object()  # a socket the lean transport does not serve
    emitter = LeanEmitter(sio, cast(Any, None))

    async def record(eio_sid: str, pkt: Any) -> None:
        sent.append((eio_sid, pkt.data))

    emitter._send = record  # type: ignore[method-assign]
    conns = [Conn(f"s{i}", f"e{i}", ns, "t", cast(Any, None), "") for i, ns in enumerate(namespaces)]
    await emitter.emit_many(conns, "message:new", {"seq": 1})
    assert sorted(sent) == sorted((f"e{i}", f'2{ns},["message:new",{{"seq":1}}]')
                                  for i, ns in enumerate(namespaces))
    await emitter.emit_many([], "message:new", {"seq": 2})
    assert len(sent) == len(namespaces)
