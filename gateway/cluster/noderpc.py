"""Requests from one node to another over the broker (`node:<node id>` channels).

Each node subscribes its own channel; `call(node, method, tenant, params)` publishes a
request there and waits for the reply on the caller's channel. For what only one node
can do: a WebRTC call lives in the process that terminated its caller's leg, so an
agent connected elsewhere (another node, or another worker of the same node) answers it
through that process. The broker is best effort, so every request has a deadline: no
reply in time is `unavailable`, which the client may retry. Handlers raise
`GatewayError`s; the caller re-raises the same code, message and details.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.aio.tasks import TaskSet
from gateway.broker import Broker
from gateway.broker.base import Envelope
from gateway.core.errors import Code, GatewayError

log = logging.getLogger(__name__)

RPC_KIND = "rpc"
NODE_PREFIX = "node:"  # the broker channels of nodes
Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (tenant id, params) → result


def node_channel(node_id: str) -> str:
    return NODE_PREFIX + node_id


class NodeRpc:
    def __init__(self, broker: Broker, node_id: str, handlers: Mapping[str, Handler] | None = None,
                 timeout: float = 5.0) -> None:
        """`handlers`: method name → its handler here (the features' methods, a table the
        assembly fills before the node starts)."""
        self.broker = broker
        self.node_id = node_id
        self.timeout = timeout
        self.handlers: Mapping[str, Handler] = {} if handlers is None else handlers
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks = TaskSet()

    async def start(self) -> None:
        await self.broker.subscribe(node_channel(self.node_id))

    async def close(self) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(GatewayError(Code.UNAVAILABLE, "node shutting down"))
        self._waiting.clear()
        await self._tasks.close()

    async def call(self, node_id: str, method: str, tenant_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The result of `method` on node `node_id`; raises what the handler raised there, or
        `unavailable` when no reply comes within the deadline."""
        rid = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        try:
            await self.broker.publish(node_channel(node_id), Envelope(
                RPC_KIND, tenant_id, params, origin=self.node_id, extra={"m": method, "id": rid}))
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            raise GatewayError(Code.UNAVAILABLE, f"node {node_id} did not answer", node=node_id) from None
        finally:
            self._waiting.pop(rid, None)

    async def on_envelope(self, env: Envelope) -> None:
        """Every envelope on this node's channel: a request to run, or a reply to match."""
        rid = env.extra.get("id")
        if env.kind != RPC_KIND or not isinstance(rid, str):
            return
        if env.extra.get("reply"):
            fut = self._waiting.get(rid)
            if fut is not None and not fut.done():
                err = env.data.get("error")
                if isinstance(err, dict):
                    fut.set_exception(_error(err))
                else:
                    fut.set_result(env.data)
            return
        method = env.extra.get("m")
        if isinstance(method, str) and env.origin:
            self._tasks.spawn(self._serve(env, method, rid), f"rpc-{method}")

    async def _serve(self, env: Envelope, method: str, rid: str) -> None:
        handler = self.handlers.get(method)
        try:
            if handler is None:
                raise GatewayError(Code.UNAVAILABLE, f"node {self.node_id} has no {method!r}")
            data = await handler(env.tenant_id, env.data)
        except GatewayError as exc:
            data = {"error": exc.to_dict()["error"]}
        except Exception:
            log.exception("node request %s failed", method)
            data = {"error": GatewayError(Code.INTERNAL, "internal error").to_dict()["error"]}
        await self.broker.publish(node_channel(env.origin), Envelope(
            RPC_KIND, env.tenant_id, data, origin=self.node_id, extra={"id": rid, "reply": True}))


def _error(err: dict[str, Any]) -> GatewayError:
    try:
        code = Code(str(err.get("code")))
    except ValueError:
        code = Code.INTERNAL
    details = err.get("details")
    return GatewayError(code, str(err.get("message", "")), **(details if isinstance(details, dict) else {}))
