"""Hypothesis over every Socket.IO event of /visitor and /agent (malformed, oversized and
hostile payloads, other tenants' ids), and raw Engine.IO/Socket.IO frames on a websocket."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.core.errors import Code
from tests.reliability.threaded import ThreadedGateway
from tests.support.server import Client, agent, visitor

CODES = {c.value for c in Code}
FIELDS = ["conversation_id", "client_id", "text", "seq", "after_seq", "before_seq", "epoch", "limit", "typing",
          "status", "agent_id", "conversations", "mine", "assignee_id", "unassigned", "contact_id", "label",
          "conversation_ids"]
RESERVED_NAMES = ["session:get", "connect", "disconnect", "connect_error", "__disconnect_final"]
MUTATING_WHEN_OK = {"conversation:start", "presence:set", "read", "message:send", "label:add"}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["0" * 32, "f" * 32, "../../etc/passwd", "'; DROP TABLE messages;--", "\x00", "%s%n",
                     "00000000-0000-0000-0000-000000000000", "open", "resolved", "online", "a" * 5000,
                     "<script>alert(1)</script>", "\U0001d54f" * 300, "connect", "disconnect"]),
)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c,
                                                                                           max_size=4), max_leaves=12)


def payloads(other_ids: list[str]) -> st.SearchStrategy[Any]:
    hostile = st.one_of(json_values, st.sampled_from(other_ids), st.text(min_size=4001, max_size=4100))
    shaped = st.dictionaries(st.sampled_from(FIELDS), hostile, max_size=5)
    resume = st.fixed_dictionaries({"conversations": st.lists(
        st.dictionaries(st.sampled_from(["conversation_id", "epoch", "seq"]), hostile, max_size=3), max_size=250)})
    return st.one_of(shaped, resume, json_values, st.tuples(json_values, json_values))


def _check_ack(event: str, ack: Any) -> bool:
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), (event, ack)
    if not ack["ok"]:
        code = ack["error"]["code"]
        assert code in CODES and code != "internal", (event, ack)
    return bool(ack["ok"])


def _fuzz(tg: ThreadedGateway, client: Client, events: list[str], data: st.DataObject, label: str) -> None:
    event = data.draw(st.one_of(st.sampled_from(events), st.text(min_size=1, max_size=30)), label="event")
    payload = data.draw(payloads([tg.b_conversation, tg.b.tenant.id, tg.b.admin.id]), label="payload")
    before = tg.snapshot()
    ack = tg.run(client.sio.call(event, payload, namespace=client.namespace, timeout=10))
    ok = _check_ack(event, ack)
    if not (ok and event in MUTATING_WHEN_OK):
        assert tg.snapshot() == before, (event, payload)
    tg.cases[label] = tg.cases.get(label, 0) + 1


@pytest.fixture(scope="module")
def clients(threaded_gateway: ThreadedGateway) -> Any:
    tg = threaded_gateway
    v = tg.run(visitor(tg.rg.url, tg.a.tenant.widget_key))
    a = tg.run(agent(tg.rg.url, tg.a.admin_token))
    yield v, a
    tg.run(v.close())
    tg.run(a.close())


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(data=st.data())
def test_visitor_events_fuzz(threaded_gateway: ThreadedGateway, clients: Any, data: st.DataObject) -> None:
    v, _ = clients
    _fuzz(threaded_gateway, v, [*sorted(threaded_gateway.rg.gw.handlers.visitor), *RESERVED_NAMES], data,
          "socket /visitor")
    assert v.sio.connected  # bad input never closes the connection


@SETTINGS
@given(data=st.data())
def test_agent_events_fuzz(threaded_gateway: ThreadedGateway, clients: Any, data: st.DataObject) -> None:
    _, a = clients
    _fuzz(threaded_gateway, a, [*sorted(threaded_gateway.rg.gw.handlers.agent), *RESERVED_NAMES], data,
          "socket /agent")
    assert a.sio.connected
    # nothing of tenant B ever reaches tenant A's connections
    assert threaded_gateway.b_conversation not in json.dumps(a.events, default=str)


RAW_FRAMES: list[str | bytes] = [
    "", "x", "9", "4", "40", '42/visitor,["connect",{"widget_key":"x"}]', '42/visitor,["disconnect"]',
    "42/visitor,[]", "42/visitor,[1,2]", '42/visitor,[{"a":1}]', "42/visitor,{}",
    "40/nope,", '40/visitor,{"widget_key": 1}', '40/visitor,{"widget_key": "nope"}',
    '40/agent,"token"', "40/visitor,[", '42["message:send"]', '42/visitor,["message:send",{}]', "41/visitor,",
    "43/visitor,1[]", '451-/visitor,["message:send",{"_placeholder":true,"num":0}]', "4" + "{" * 100_000,
    '42/visitor,[' + "[" * 5000 + "]" * 5000 + "]", "2", "3", "5", "6", "1", b"\x00\xff" * 100, b"\x04garbage",
    '40/visitor,{"widget_key":"' + "k" * 300 + '"}', "42/visitor,9999999999999999999999[]",
    '42/visitor,["message:send",{"text":"' + "a" * (2 * 1024 * 1024) + '"}]',  # over the frame limit: closed
]


async def _raw(url: str, frame: str | bytes, widget_key: str) -> str:
    ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        opened = await ws.receive(timeout=5)
        assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{")
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        # then a well-formed namespace connect on the same socket (if it is still open)
        if not ws.closed:
            await ws.send_str('40/visitor,{"widget_key":"' + widget_key + '"}')
        outcome = "open"
        try:
            while True:
                msg = await ws.receive(timeout=0.5)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return "closed"
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("40/visitor,"):
                    outcome = "connected"
        except TimeoutError:
            return outcome


def test_raw_frames_never_crash_the_server(threaded_gateway: ThreadedGateway, caplog: Any) -> None:
    tg = threaded_gateway
    before = tg.snapshot()
    outcomes: dict[str, int] = {}
    with caplog.at_level(logging.ERROR):
        for frame in RAW_FRAMES:
            out = tg.run(_raw(tg.rg.url, frame, tg.a.tenant.widget_key))
            outcomes[out] = outcomes.get(out, 0) + 1
        tg.cases["raw frames"] = len(RAW_FRAMES)

        async def healthy() -> int:
            async with aiohttp.ClientSession() as http, http.get(tg.rg.url + "/healthz") as r:
                return r.status

        assert tg.run(healthy()) == 200
        c = tg.run(visitor(tg.rg.url, tg.a.tenant.widget_key))
        assert tg.run(c.call("conversation:list"))["ok"]
        tg.run(c.close())
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith(("gateway", "engineio", "socketio"))]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    assert outcomes.get("closed", 0) >= 1 and outcomes.get("connected", 0) >= 1, outcomes
    snapshot = tg.snapshot()
    a_before, a_after = before[tg.a.tenant.id], snapshot[tg.a.tenant.id]
    # the raw namespace connects made visitor contacts of tenant A; nothing else changed
    assert {k: v for k, v in a_before.items() if k not in ("contacts", "contact_identities")} == \
        {k: v for k, v in a_after.items() if k not in ("contacts", "contact_identities")}
    assert snapshot[tg.b.tenant.id] == before[tg.b.tenant.id]
