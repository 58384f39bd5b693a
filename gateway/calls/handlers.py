"""Socket.IO `call:*` handlers (validated payloads → CallService → ack)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.calls.service import CallService
from gateway.errors import Code, GatewayError, bad_request
from gateway.realtime.context import Conn
from gateway.realtime.fanout import Fanout
from gateway.validation import req_id

Ack = dict[str, Any]


def req_sdp(p: Mapping[str, Any], max_bytes: int) -> str:
    v = p.get("sdp")
    if not isinstance(v, str) or not v.strip():
        raise bad_request("'sdp' must be a non-empty string (an SDP offer)", field="sdp")
    if len(v.encode("utf-8", "surrogatepass")) > max_bytes:
        raise GatewayError(Code.PAYLOAD_TOO_LARGE, f"'sdp' is larger than {max_bytes} bytes", field="sdp")
    if "\x00" in v or not v.lstrip().startswith("v=0"):
        raise bad_request("'sdp' is not an SDP description", field="sdp")
    return v


class CallHandlers:
    def __init__(self, calls: CallService, fanout: Fanout) -> None:
        self.calls = calls
        self.fanout = fanout
        self.visitor = {
            "call:config": self.config,
            "call:start": self.start,
            "call:hangup": self.hangup,
            "call:list": self.list,
        }
        self.agent = {
            "call:config": self.config,
            "call:accept": self.accept,
            "call:decline": self.decline,
            "call:hangup": self.hangup,
            "call:list": self.list,
        }

    @property
    def max_sdp(self) -> int:
        return self.calls.settings.max_sdp_bytes

    async def config(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        return {"ok": True, "ice_servers": self.calls.ice_servers(), "ring_timeout": self.calls.settings.ring_timeout}

    async def start(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        conv_id = req_id(p, "conversation_id")
        sdp = req_sdp(p, self.max_sdp)
        row, answer, available = await self.calls.start(conn.visitor, conv_id, sdp)
        if conv_id not in conn.watching:  # so the caller gets call:updated
            await self.fanout.watch(conn, conv_id, None, None)
        return {"ok": True, "call": row.to_dict(), "sdp": answer, "agents_available": available,
                "ice_servers": self.calls.ice_servers()}

    async def accept(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        call_id = req_id(p, "call_id")
        sdp = req_sdp(p, self.max_sdp)
        row, answer = await self.calls.accept(conn.agent, call_id, sdp)
        return {"ok": True, "call": row.to_dict(), "sdp": answer}

    async def decline(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        row = await self.calls.decline(conn.agent, req_id(p, "call_id"))
        return {"ok": True, "call": row.to_dict()}

    async def hangup(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        principal = conn.visitor if not conn.is_agent else conn.agent
        row = await self.calls.hangup(principal, req_id(p, "call_id"))
        return {"ok": True, "call": row.to_dict()}

    async def list(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        principal = conn.visitor if not conn.is_agent else conn.agent
        rows = await self.calls.history(principal, req_id(p, "conversation_id"))
        return {"ok": True, "calls": [r.to_dict() for r in rows]}
