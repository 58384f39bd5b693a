"""Admission control for Socket.IO: drain state, connections per IP and visitor rate limits.

`RealtimeServer` calls `admit`/`release` around a connection's life and `check` before a
visitor event's handler; the guard knows nothing about Socket.IO itself. The connections
per IP are counted for the whole node (`gateway.ipconns`: across its workers too), and
so are the rate limits per IP (`gateway.shared_limits`); the messages per connection per
process (`gateway.limits`: a connection lives in one).
"""

from __future__ import annotations

from collections.abc import Awaitable

from gateway.errors import Code, GatewayError
from gateway.limits import Limits
from gateway.shared_limits import NodeLimits

VISITOR_NS = "/visitor"


class Guard:
    def __init__(self, limits: Limits, node: NodeLimits) -> None:
        self.limits = limits
        self.connections = node.connections
        self.conversations = node.conversations
        self.messages_per_ip = node.messages
        self.draining = False

    async def admit(self, namespace: str, remote: str) -> None:
        """Before a handshake: refuse while draining, or beyond the visitor connections per IP."""
        if self.draining:
            raise GatewayError(Code.UNAVAILABLE, "this node is draining; reconnect", retry_after=1.0)
        if namespace == VISITOR_NS:
            await self.connections.acquire(remote)

    def release(self, namespace: str, remote: str) -> None:
        """A connection `admit` let in has ended (or its handshake failed)."""
        if namespace == VISITOR_NS:
            self.connections.release(remote)

    def forget(self, sid: str) -> None:
        self.limits.messages_per_connection.forget(f"conn:{sid}")

    def check(self, namespace: str, event: str, sid: str, remote: str) -> Awaitable[None] | None:
        """Before a visitor request: raises `rate_limited` (details.retry_after) when over a
        limit, or returns an awaitable that does (a limit shared by the node's workers asks
        Redis); None when there is nothing more to wait for."""
        if namespace != VISITOR_NS:
            return None
        if event == "message:send":
            self.limits.messages_per_connection.hit(f"conn:{sid}")
            self.messages_per_ip(remote)
        elif event == "conversation:start":
            return self.conversations(remote)
        return None
