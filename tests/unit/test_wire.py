"""The Engine.IO / Socket.IO wire format (`gateway.edge.wire`), checked against the packet
codec of python-socketio (the client library, an independent implementation of the same
specification) and against malformed input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from socketio import packet as sio_packet

from gateway.edge.wire import (
    ACK,
    CONNECT,
    DISCONNECT,
    EVENT,
    PacketError,
    decode_payload,
    decode_sio,
    encode_sio,
    open_packet,
    ws_frame,
)

PAYLOADS: list[Any] = [
    ["message:new", {"text": "Xin chào 👋 — Tiếng Việt", "seq": 1, "nested": [{"a": None, "b": 1.5, "c": True}]}],
    ["message:new", {"text": 'quotes " and \\ and \n newline \t tab \x01 control', "seq": 2**62}],
    ["ev"],
]


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("namespace", ["/", "/agent"])
@pytest.mark.parametrize("pid", [None, 0, 17])
def test_a_client_decodes_what_we_encode(data: Any, namespace: str, pid: int | None) -> None:
    for ptype, payload in ((EVENT, data), (ACK, [data[1] if len(data) > 1 else None])):
        if ptype == ACK and pid is None:
            continue
        text = encode_sio(ptype, namespace, payload, pid).decode()
        assert text[0] == "4"  # an Engine.IO MESSAGE
        back = sio_packet.Packet(encoded_packet=text[1:])
        assert (back.packet_type, back.namespace or "/", back.id) == (ptype, namespace, pid)
        assert json.dumps(back.data) == json.dumps(payload)


@pytest.mark.parametrize("data", PAYLOADS)
@pytest.mark.parametrize("namespace", [None, "/visitor"])
@pytest.mark.parametrize("pid", [None, 5])
def test_we_decode_what_a_client_encodes(data: Any, namespace: str | None, pid: int | None) -> None:
    text = sio_packet.Packet(sio_packet.EVENT, data=data, namespace=namespace, id=pid).encode()
    pkt = decode_sio(text)
    assert (pkt.type, pkt.namespace, pkt.id, pkt.data) == (EVENT, namespace or "/", pid, data)


def test_connect_and_disconnect() -> None:
    assert decode_sio('0/visitor,{"widget_key":"k"}').data == {"widget_key": "k"}
    assert decode_sio("0/visitor,").data is None
    assert decode_sio("1/visitor,").type == DISCONNECT
    assert encode_sio(CONNECT, "/visitor", {"sid": "s"}) == b'40/visitor,{"sid":"s"}'
    assert encode_sio(DISCONNECT, "/agent") == b"41/agent,"


def test_non_ascii_text_is_utf8_not_escaped() -> None:
    assert encode_sio(EVENT, "/agent", ["message:new", {"text": "Xin chào"}]) == \
        '42/agent,["message:new",{"text":"Xin chào"}]'.encode()


@pytest.mark.parametrize("text", [
    "", "7", "x", "2", "2[]", "2[1]", '2{"a":1}', "2/visitor", '2/visitor["ev"]', "3/visitor,1{}", "3/visitor,[]",
    '5/visitor,1-["ev",{"_placeholder":true,"num":0}]', "6/visitor,1-[]", '4/visitor,{"message":"x"}',
    "1/visitor,{}", '0/visitor,["a"]', "0/visitor,5{}", '2/agent,1234567890123456["ev"]', '2/agent?x=1,5["ev"]',
    "2/" + "n" * 200 + ',["ev"]', '2["ev",', "2" + "[" * 3000 + "]" * 3000,
    '2["ev",' + '{"a":' * 3000 + "1" + "}" * 3000 + "]",
    '2["ev","\\x"]',
])
def test_malformed_packets_are_refused(text: str) -> None:
    with pytest.raises(PacketError):
        decode_sio(text)


def test_json_orjson_refuses_is_read_as_the_standard_decoder_reads_it() -> None:
    assert decode_sio('2["ev","\\ud800"]').data == ["ev", "\ud800"]  # an escaped lone surrogate is valid JSON
    assert decode_sio('2["ev",Infinity,NaN]').data[1] == float("inf")


def test_polling_payloads() -> None:
    assert decode_payload("40/visitor,\x1e3\x1e6", 10) == ["40/visitor,", "3", "6"]
    for bad in ("", "\x1e", "4a\x1e", "x", "bAAA", "4\x1e\x1e3"):
        with pytest.raises(PacketError):
            decode_payload(bad, 10)
    with pytest.raises(PacketError):
        decode_payload("\x1e".join(["6"] * 11), 10)


def test_open_packet_advertises_milliseconds() -> None:
    text = open_packet("s", [], 0.3, 0.25, 1000)
    assert json.loads(text[1:]) == {"sid": "s", "upgrades": [], "pingInterval": 300, "pingTimeout": 250,
                                    "maxPayload": 1000}


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536])
def test_frames_carry_their_length(n: int) -> None:
    frame = ws_frame(b"x" * n)
    assert frame[0] == 0x81 and frame.endswith(b"x" * n)
    header = len(frame) - n
    assert header == (2 if n < 126 else 4 if n < 65536 else 10)
