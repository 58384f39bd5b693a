"""Who is acting: an authenticated agent or a visitor (contact) of one tenant."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.domain import AgentRole, AuthorType
from gateway.core.errors import Code, GatewayError


@dataclass(frozen=True, slots=True)
class AgentPrincipal:
    tenant_id: str
    agent_id: str
    role: AgentRole
    name: str

    @property
    def participant(self) -> str:
        return f"agent:{self.agent_id}"

    @property
    def author(self) -> tuple[AuthorType, str]:
        return AuthorType.AGENT, self.agent_id


@dataclass(frozen=True, slots=True)
class VisitorPrincipal:
    tenant_id: str
    visitor_id: str
    contact_id: str

    @property
    def participant(self) -> str:
        return f"contact:{self.contact_id}"

    @property
    def author(self) -> tuple[AuthorType, str]:
        return AuthorType.CONTACT, self.contact_id


Principal = AgentPrincipal | VisitorPrincipal


def require_admin(p: AgentPrincipal, to: str = "do this") -> AgentPrincipal:
    """`p` when it is an admin of its tenant; otherwise `forbidden` ("only an admin may <to>")."""
    if p.role != AgentRole.ADMIN:
        raise GatewayError(Code.FORBIDDEN, f"only an admin may {to}")
    return p
