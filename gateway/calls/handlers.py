"""Socket.IO `call:*` handlers (validated payloads → CallService → ack)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.calls.service import CallService
from gateway.chat.principals import AgentPrincipal
from gateway.cluster.noderpc import NodeRpc
from gateway.core.domain import AgentRole
from gateway.core.errors import Code, GatewayError, bad_request
from gateway.core.validation import req_id
from gateway.realtime.context import Conn
from gateway.realtime.fanout import Fanout

Ack = dict[str, Any]
AgentOp = Callable[[AgentPrincipal, str, dict[str, Any]], Awaitable[Ack]]  # (agent, call id, params) → ack


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
    """A call lives in the process that terminated the caller's leg. `call:accept`,
    `call:decline` and an agent's `call:hangup` arriving at another node or worker are
    run there through `NodeRpc` (the agent's own principal travels with the request), and
    the ack comes back the same way."""

    def __init__(self, calls: CallService, fanout: Fanout, rpc: NodeRpc) -> None:
        self.calls = calls
        self.fanout = fanout
        self.rpc = rpc
        self._agent_ops: dict[str, AgentOp] = {"call:accept": self._accept, "call:decline": self._decline,
                                               "call:hangup": self._hangup}
        # run here for an agent connected to another node or worker (declared node RPC methods)
        self.rpc_methods = {method: functools.partial(self._remote, method) for method in self._agent_ops}
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
        return await self._run(conn.agent, "call:accept", call_id, {"sdp": req_sdp(p, self.max_sdp)})

    async def decline(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        return await self._run(conn.agent, "call:decline", req_id(p, "call_id"), {})

    async def hangup(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        call_id = req_id(p, "call_id")
        if conn.is_agent:
            return await self._run(conn.agent, "call:hangup", call_id, {})
        return {"ok": True, "call": (await self.calls.hangup(conn.visitor, call_id)).to_dict()}

    # --- an agent's call operations, here or in the process holding the call -------------
    async def _run(self, agent: AgentPrincipal, method: str, call_id: str, params: dict[str, Any]) -> Ack:
        """`method`'s ack: run here, or through `NodeRpc` where the call lives."""
        owner = await self.calls.owner_elsewhere(agent.tenant_id, call_id)
        if owner is None:
            return await self._agent_ops[method](agent, call_id, params)
        return await self.rpc.call(owner, method, agent.tenant_id, {
            "agent": {"agent_id": agent.agent_id, "role": agent.role.value, "name": agent.name},
            "call_id": call_id, **params})

    async def _remote(self, method: str, tenant_id: str, params: dict[str, Any]) -> Ack:
        """A sibling's `_run` of `method` for a call held here."""
        a = params.get("agent")
        call_id = params.get("call_id")
        try:
            if not isinstance(a, dict) or not isinstance(call_id, str):
                raise ValueError
            agent = AgentPrincipal(tenant_id, str(a["agent_id"]), AgentRole(a["role"]), str(a["name"]))
        except (KeyError, ValueError):
            raise bad_request("malformed node request") from None
        return await self._agent_ops[method](agent, call_id, params)

    async def _accept(self, agent: AgentPrincipal, call_id: str, params: dict[str, Any]) -> Ack:
        row, answer = await self.calls.accept(agent, call_id, str(params.get("sdp", "")))
        return {"ok": True, "call": row.to_dict(), "sdp": answer}

    async def _decline(self, agent: AgentPrincipal, call_id: str, params: dict[str, Any]) -> Ack:
        return {"ok": True, "call": (await self.calls.decline(agent, call_id)).to_dict()}

    async def _hangup(self, agent: AgentPrincipal, call_id: str, params: dict[str, Any]) -> Ack:
        return {"ok": True, "call": (await self.calls.hangup(agent, call_id)).to_dict()}

    async def list(self, conn: Conn, p: Mapping[str, Any]) -> Ack:
        principal = conn.visitor if not conn.is_agent else conn.agent
        rows = await self.calls.history(principal, req_id(p, "conversation_id"))
        return {"ok": True, "calls": [r.to_dict() for r in rows]}
