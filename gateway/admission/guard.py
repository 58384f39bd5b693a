"""Admission control: sessions per IP and visitor rate limits.

The Engine.IO server calls `acquire`/`release` around every session's life, from its
handshake (the edge's `Admission`); `RealtimeServer` calls `check` before a visitor event's
handler and `forget` when a connection ends (a realtime `Gate`). The sessions per IP are counted
for the whole node (`gateway.admission.ipconns`: across its workers too), and so are the rate
limits per IP (`gateway.admission.shared_limits`); the messages per connection per process
(`gateway.admission.limits`: a connection lives in one).
"""

from __future__ import annotations

from collections.abc import Awaitable

from gateway.admission.limits import Limits
from gateway.admission.shared_limits import NodeLimits
from gateway.core.errors import GatewayError
from gateway.edge import Refusal

VISITOR_NS = "/visitor"


class Guard:
    def __init__(self, limits: Limits, node: NodeLimits) -> None:
        self.limits = limits
        self.connections = node.connections
        self.conversations = node.conversations
        self.messages_per_ip = node.messages

    async def acquire(self, remote: str) -> None:
        """Before an Engine.IO session: refuse (429) beyond `MAX_CONNECTIONS_PER_IP`."""
        try:
            await self.connections.acquire(remote)
        except GatewayError as exc:
            raise Refusal(429, exc.message, retry_after=exc.details.get("retry_after"),
                          context={"code": exc.code.value, "details": exc.details}) from None

    def release(self, remote: str) -> None:
        """A session `acquire` let in has ended."""
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
