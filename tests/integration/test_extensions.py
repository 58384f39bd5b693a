"""The extension API (gateway/extension): the core runs with the features it is given (none
at all included), composes what a feature declares — events, routes, middlewares, admission,
listeners, start/stop hooks, published objects — and freezes what it reads at run time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import build_gateway
from gateway.composition import default_features
from gateway.core.errors import Code, GatewayError
from gateway.edge import Refusal
from gateway.extension import Command, Extension, Host, SealedColumn
from gateway.realtime.context import Conn
from tests.support.server import Refused, make_config, new_client_id, run_gateway, visitor

NOTES_KEY = web.AppKey("notes", list)


@dataclass
class Probe:
    """A feature declaring one of each extension point, recording what the core calls."""

    name: str = "probe"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()
    calls: list[str] = field(default_factory=list)
    refuse_remote: str | None = None

    async def build(self, host: Host) -> Extension:
        calls = self.calls

        async def echo(conn: Conn, payload: Mapping[str, Any]) -> dict[str, Any]:
            return {"ok": True, "echo": payload.get("x"), "tenant": conn.tenant_id}

        async def hello(_: web.Request) -> web.Response:
            return web.json_response({"hello": host.node_id})

        @web.middleware
        async def tag(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
            response = await handler(request)
            response.headers["X-Probe"] = "1"
            return response

        async def on_message(msg: Any, conv: Any) -> None:
            calls.append(f"message:{msg.text}")

        async def check(p: Any, tenant_id: str, conversation_id: str) -> None:
            calls.append("check")

        async def start() -> None:
            calls.append("start")

        async def stop() -> None:
            calls.append("stop")

        return Extension(visitor_events={"probe:echo": echo}, routes=[web.get("/probe", hello)],
                         middlewares=[tag], admission=[Gatekeeper(self)], message_listeners=[on_message],
                         send_checks=[check], on_start=[start], on_stop=[stop],
                         app_state={NOTES_KEY: calls})


@dataclass
class Gatekeeper:
    probe: Probe

    async def acquire(self, remote: str) -> None:
        if remote == self.probe.refuse_remote:
            raise Refusal(429, "probe refuses", retry_after=1.0)
        self.probe.calls.append("acquire")

    def release(self, remote: str) -> None:
        self.probe.calls.append("release")

    def check(self, namespace: str, event: str, sid: str, remote: str) -> Awaitable[None] | None:
        if event == "probe:echo":
            self.probe.calls.append("gate")
        return None

    def forget(self, sid: str) -> None:
        self.probe.calls.append("forget")


async def test_a_feature_declares_and_the_core_composes(tmp_path: Path) -> None:
    probe = Probe()
    async with run_gateway(make_config(tmp_path), features=[probe]) as rg:
        assert rg.gw.features == ("probe",) and rg.gw.app[NOTES_KEY] is probe.calls
        assert probe.calls == ["start"]
        async with aiohttp.ClientSession() as http, http.get(rg.url + "/probe") as r:
            assert r.status == 200 and r.headers["X-Probe"] == "1"
            assert (await r.json()) == {"hello": rg.gw.node_id}
        t = await rg.tenant()
        v = await visitor(rg.url, t.tenant.widget_key)
        try:
            assert await v.call("probe:echo", {"x": 7}) == {"ok": True, "echo": 7, "tenant": t.tenant.id}
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            sent = await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                 "text": "hi"})
            assert sent["ok"]
        finally:
            await v.close()
        # uploads are the widget feature's: without it, chat has no attachment keeper
        assert rg.gw.chat.attachments is None
    assert probe.calls[:5] == ["start", "acquire", "gate", "check", "message:hi"]
    assert {"forget", "release"} <= set(probe.calls) and probe.calls[-1] == "stop"


async def test_the_core_alone_serves_chat_and_lacks_the_features(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path), features=[]) as rg:
        t = await rg.tenant()
        v = await visitor(rg.url, t.tenant.widget_key)
        try:
            assert (await v.call("conversation:start"))["ok"]
            assert (await v.call("call:config"))["error"]["code"] == "unknown_event"
        finally:
            await v.close()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{rg.url}/api/v1/public/widget/{t.tenant.widget_key}/settings") as r:
                assert r.status == 404  # the widget feature's route
            async with http.get(rg.url + "/healthz") as r:
                assert r.status == 200


async def test_an_admission_refusal_answers_the_handshake(tmp_path: Path) -> None:
    probe = Probe(refuse_remote="127.0.0.1")
    async with run_gateway(make_config(tmp_path), features=[probe]) as rg:
        t = await rg.tenant()
        with pytest.raises(Refused) as refused:
            await visitor(rg.url, t.tenant.widget_key, options={"transports": ["polling"]})
        assert refused.value.data["message"] == "probe refuses"
        assert "acquire" not in probe.calls and rg.gw.realtime.sockets.engine.refused >= 1


async def test_what_the_core_reads_at_run_time_is_frozen_once_built(tmp_path: Path) -> None:
    gw = await build_gateway(make_config(tmp_path), default_features())
    try:
        hooks = gw.chat.hooks
        for collection in (hooks.message_listeners, hooks.send_checks, hooks.contact_listeners, hooks.attachments):
            assert collection.frozen
            with pytest.raises(RuntimeError):
                collection.add(lambda *a: None)  # type: ignore[arg-type]
        assert isinstance(gw.on_start, tuple) and isinstance(gw.on_stop, tuple)
        with pytest.raises(TypeError):
            gw.handlers.visitor["x"] = gw.handlers.visitor["typing"]  # type: ignore[index]
        assert "call:start" in gw.handlers.visitor and gw.chat.attachments is not None
        assert gw.features == ("widget", "connectors", "calls", "admission", "privacy", "ratings", "search", "desk")
    finally:
        await gw.close()


async def test_a_feature_cannot_replace_a_core_event(tmp_path: Path) -> None:
    @dataclass
    class Thief:
        name: str = "thief"
        commands: Sequence[Command] = ()
        sealed: Sequence[SealedColumn] = ()

        async def build(self, host: Host) -> Extension:
            async def send(conn: Conn, payload: Mapping[str, Any]) -> dict[str, Any]:
                raise GatewayError(Code.INTERNAL, "never")

            return Extension(visitor_events={"message:send": send})

    with pytest.raises(ValueError, match="core events"):
        await build_gateway(make_config(tmp_path), [Thief()])
