"""The typed connection context a handshake yields; nothing above it sees aiohttp or Engine.IO."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.chat.principals import AgentPrincipal, Principal, VisitorPrincipal


@dataclass(eq=False, slots=True)
class Conn:
    """One Socket.IO connection (kept per connection: what is empty most of the time is
    allocated on first use)."""

    sid: str
    eio_sid: str
    namespace: str
    tenant_id: str
    principal: Principal
    remote: str
    user_agent: str = ""
    origin: str = ""
    groups: Sequence[str] = ()  # tenant:/contact: channels joined
    _watching: set[str] | None = field(default=None, repr=False)
    _session: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def watching(self) -> set[str]:
        """The conversation ids watched (the set is made on first use)."""
        w = self._watching
        if w is None:
            w = self._watching = set()
        return w

    @property
    def session(self) -> dict[str, Any]:
        """What `session:get` answers; an agent's is made from its principal unless set."""
        s = self._session
        if s is not None:
            return s
        p = self.principal
        if isinstance(p, AgentPrincipal):
            return {"agent_id": p.agent_id, "tenant_id": p.tenant_id}
        s = self._session = {}
        return s

    @session.setter
    def session(self, value: dict[str, Any]) -> None:
        self._session = value

    @property
    def is_agent(self) -> bool:
        return isinstance(self.principal, AgentPrincipal)

    @property
    def visitor(self) -> VisitorPrincipal:
        assert isinstance(self.principal, VisitorPrincipal)
        return self.principal

    @property
    def agent(self) -> AgentPrincipal:
        assert isinstance(self.principal, AgentPrincipal)
        return self.principal


class Emitter(Protocol):
    """Sends server events to connections. `emit_many` encodes each event once per namespace."""

    async def emit(self, conn: Conn, event: str, data: dict[str, Any]) -> None: ...

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None: ...

    async def disconnect(self, conn: Conn) -> None: ...
