"""The typed connection context a handshake yields; nothing above it sees aiohttp or engineio."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.chat.principals import AgentPrincipal, Principal, VisitorPrincipal


@dataclass(eq=False, slots=True)
class Conn:
    sid: str
    eio_sid: str
    namespace: str
    tenant_id: str
    principal: Principal
    remote: str
    user_agent: str = ""
    origin: str = ""
    watching: set[str] = field(default_factory=set)  # conversation ids
    groups: list[str] = field(default_factory=list)  # tenant:/contact: channels joined
    session: dict[str, Any] = field(default_factory=dict)  # what `session:get` answers

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
