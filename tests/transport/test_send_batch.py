"""`message:send`s that arrive in one turn of the loop are handled in one task and stored
and published together (`RealtimeServer.send_batch`), and each is still answered as
`dispatch` answers it alone: in order, with its own outcome, counted in the metrics."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.chat.service import MessageListener
from gateway.composition import default_features
from gateway.extension import Command, Extension, Host, SealedColumn
from tests.support.server import make_config, run_gateway
from tests.transport.rawws import RawClient


async def _visitor(url: str, widget_key: str) -> tuple[RawClient, str]:
    """A connected visitor with a started (and watched) conversation."""
    c = await RawClient.connect(url)
    c.connect_ns("/visitor", {"widget_key": widget_key})
    aid = c.emit("/visitor", "conversation:start", {})
    while True:
        kind, body = await c.recv_packet()
        if kind == "ack" and body[0] == aid:
            return c, body[1][0]["conversation"]["id"]


async def _acks(c: RawClient, ids: set[int], news: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The acks of `ids` (and the `message:new`s that came meanwhile, into `news`)."""
    got: dict[int, dict[str, Any]] = {}
    while not ids <= got.keys():
        kind, body = await asyncio.wait_for(c.recv_packet(), 10)
        if kind == "ack":
            got[body[0]] = body[1][0]
        elif kind == "event" and body[0] == "message:new":
            news.append(body[1])
    return got


def cid(name: str) -> str:
    """A client id (a UUID) named for the test."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _send(ns: str, ack_id: int, *args: Any) -> str:
    return f"42{ns},{ack_id}{json.dumps(['message:send', *args])}"


def _events(gw: Gateway, outcome: str) -> float:
    return gw.metrics.registry.get_sample_value(
        "izh_socket_events_total", {"namespace": "/visitor", "event": "message:send", "outcome": outcome}) or 0.0


async def test_one_turns_sends_are_one_batch_each_answered_on_its_own(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        t = await rg.tenant()
        a, conv = await _visitor(rg.url, t.tenant.widget_key)
        b, other = await _visitor(rg.url, t.tenant.widget_key)
        try:
            news: list[dict[str, Any]] = []
            # the first send to a conversation reads it (its owner is then known): dispatch's way
            a.send_text(_send("/visitor", 100, {"conversation_id": conv, "client_id": cid("c0"), "text": "first"}))
            b.send_text(_send("/visitor", 100, {"conversation_id": other, "client_id": cid("b0"), "text": "b's"}))
            assert (await _acks(a, {100}, news))[100]["message"]["seq"] == 1
            assert (await _acks(b, {100}, []))[100]["ok"]
            sio, appender = rg.gw.realtime.sockets, rg.gw.chat.appender
            batched, batches, ok = sio.batched_events, appender.batches, _events(rg.gw, "ok")
            unknown = uuid.uuid4().hex
            a.send_texts([
                _send("/visitor", 1, {"conversation_id": conv, "client_id": cid("c1"), "text": "one"}),
                _send("/visitor", 2, {"conversation_id": other, "client_id": cid("x"), "text": "not mine"}),
                _send("/visitor", 3, 42),
                _send("/visitor", 4, {"conversation_id": conv, "client_id": cid("c2"), "text": "two"}),
                _send("/visitor", 5, {"conversation_id": conv, "client_id": cid("c1"), "text": "one again"}),
                _send("/visitor", 6, {"conversation_id": unknown, "client_id": cid("y"), "text": "nowhere"}),
                _send("/visitor", 7, {"conversation_id": conv, "client_id": cid("c3"), "text": "three"}),
                _send("/visitor", 8, {"conversation_id": conv, "client_id": cid("c4"), "text": "x"}, 1),
                _send("/visitor", 9, {"conversation_id": conv, "client_id": cid("c5")}),
            ])
            acks = await _acks(a, set(range(1, 10)), news)
            assert sio.batched_events == batched + 9
            assert [(acks[i]["message"]["seq"], acks[i]["message"]["text"], acks[i]["duplicate"])
                    for i in (1, 4, 5, 7)] == [(2, "one", False), (3, "two", False), (2, "one", True),
                                               (4, "three", False)]
            assert acks[2]["error"]["code"] == "not_found"  # another visitor's conversation
            assert acks[3]["error"]["code"] == "bad_request"  # a payload that is not an object
            assert acks[6]["error"]["code"] == "not_found"  # not seen before: read, and not there
            assert acks[8]["error"]["code"] == "bad_request"  # two arguments
            assert acks[9]["error"]["code"] == "bad_request" and acks[9]["error"]["details"]["field"] == "text"
            # the four stored or found together, in one transaction
            assert appender.batches == batches + 1
            assert _events(rg.gw, "ok") == ok + 4 and rg.gw.realtime.inflight == 0
            stored = await rg.gw.store.get_messages(t.tenant.id, conv)
            assert [(m.seq, m.text) for m in stored] == [(1, "first"), (2, "one"), (3, "two"), (4, "three")]
            assert [m.text for m in await rg.gw.store.get_messages(t.tenant.id, other)] == ["b's"]
            # the watcher's stream: each message once, in order (the duplicate's re-publish dropped)
            while len(news) < 4:
                kind, body = await asyncio.wait_for(a.recv_packet(), 10)
                if kind == "event" and body[0] == "message:new":
                    news.append(body[1])
            assert [m["seq"] for m in news] == [1, 2, 3, 4]
        finally:
            await a.close()
            await b.close()


async def test_many_connections_sending_at_once_keep_each_ones_order(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        t = await rg.tenant()
        visitors = [await _visitor(rg.url, t.tenant.widget_key) for _ in range(12)]
        try:
            for k, (c, conv) in enumerate(visitors):  # warm: each conversation's owner known
                c.send_text(_send("/visitor", 1000, {"conversation_id": conv, "client_id": cid(f"w{k}"), "text": "hi"}))
            for c, _ in visitors:
                await _acks(c, {1000}, [])
            batches = rg.gw.chat.appender.batches
            for k, (c, conv) in enumerate(visitors):
                c.send_texts([_send("/visitor", i, {"conversation_id": conv, "client_id": cid(f"{k}-{i}"),
                                                     "text": f"{k}/{i}"}) for i in range(1, 9)])
            for k, (c, conv) in enumerate(visitors):
                acks = await _acks(c, set(range(1, 9)), [])
                assert [acks[i]["message"]["seq"] for i in range(1, 9)] == list(range(2, 10)), k
                stored = await rg.gw.store.get_messages(t.tenant.id, conv)
                assert [m.text for m in stored][1:] == [f"{k}/{i}" for i in range(1, 9)]
            assert rg.gw.chat.appender.batches - batches < 12 * 8  # grouped
            assert rg.gw.realtime.inflight == 0
        finally:
            for c, _ in visitors:
                await c.close()


@dataclass
class Listening:
    """A feature that declares one message listener."""

    listener: MessageListener
    name: str = "listening"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        return Extension(message_listeners=[self.listener])


async def test_a_failing_listener_fails_only_its_own_send(tmp_path: Path) -> None:
    """A message listener that raises (a connector's outbox, a metric) answers that send
    `internal`, as `dispatch` does; the others of the batch are stored and answered."""
    async def boom(msg: Any, conv: Any) -> None:
        if msg.text == "boom":
            raise RuntimeError("listener failed")

    async with run_gateway(make_config(tmp_path), features=[*default_features(), Listening(boom)]) as rg:
        t = await rg.tenant()
        a, conv = await _visitor(rg.url, t.tenant.widget_key)
        try:
            a.send_text(_send("/visitor", 100, {"conversation_id": conv, "client_id": cid("w"), "text": "warm"}))
            await _acks(a, {100}, [])
            a.send_texts([_send("/visitor", i, {"conversation_id": conv, "client_id": cid(text), "text": text})
                          for i, text in ((1, "ok 1"), (2, "boom"), (3, "ok 2"))])
            acks = await _acks(a, {1, 2, 3}, [])
            assert acks[1]["ok"] and acks[3]["ok"] and acks[2]["error"]["code"] == "internal"
            assert [m.text for m in await rg.gw.store.get_messages(t.tenant.id, conv)] == \
                ["warm", "ok 1", "boom", "ok 2"]  # stored before the listeners ran (as alone)
            assert _events(rg.gw, "internal") == 1 and rg.gw.realtime.inflight == 0
        finally:
            await a.close()
