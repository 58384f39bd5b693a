"""Administrative use cases shared by the CLI, the demo and the tests."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.domain import Agent, AgentRole, Tenant
from gateway.security.auth import hash_token, new_agent_token, new_secret, new_widget_key
from gateway.store import Store


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant: Tenant
    admin: Agent
    admin_token: str


@dataclass(frozen=True, slots=True)
class NewAgent:
    agent: Agent
    token: str


async def create_agent(
    store: Store, tenant_id: str, name: str, *, role: AgentRole = AgentRole.AGENT, capacity: int = 5, now: float
) -> NewAgent:
    token = new_agent_token()
    agent = await store.create_agent(
        tenant_id=tenant_id, name=name, role=role, token_hash=hash_token(token), capacity=capacity, now=now
    )
    return NewAgent(agent, token)


async def create_tenant(
    store: Store, name: str, *, admin_name: str = "Admin", require_identity: bool = False, now: float
) -> NewTenant:
    tenant = await store.create_tenant(
        name=name, widget_key=new_widget_key(), identity_secret=new_secret(), now=now
    )
    if require_identity:
        tenant = await store.update_tenant(tenant.id, require_identity=True)
    admin = await create_agent(store, tenant.id, admin_name, role=AgentRole.ADMIN, now=now)
    return NewTenant(tenant, admin.agent, admin.token)
