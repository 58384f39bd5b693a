"""Socket.IO handshake: the `auth` object → a principal (or a typed refusal)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.aio.lru import LruCache
from gateway.chat.principals import AgentPrincipal, VisitorPrincipal
from gateway.core.domain import AgentRole, Tenant, TenantStatus
from gateway.core.errors import Code, GatewayError
from gateway.core.validation import as_object, opt_str
from gateway.security.auth import VisitorClaims, VisitorTokens, hash_token, verify_identity
from gateway.store import NotFound, Store


@dataclass(frozen=True, slots=True)
class VisitorSession:
    principal: VisitorPrincipal
    token: str
    identified: bool


# principals are immutable: connections of one agent (tabs, devices) share one object,
# and its strings, instead of holding a copy each (bounded: cleared when full)
PRINCIPAL_CACHE = 4096


# widget keys whose tenant a process keeps (least recently used forgotten first)
TENANT_CACHE_KEYS = 10_000


class TenantsByWidgetKey:
    """The tenant of a widget key, read from the store at most once per `ttl` seconds (of
    `clock`) per key: every page view of a shop opens a widget connection, and the tenant
    row is the same for all of them. An unknown key is not kept (each try reads the store,
    as without the cache). A change made elsewhere (a tenant ended, its key replaced, by
    the CLI or another node) reaches this process's new connections within `ttl`; `ttl` 0
    reads the store every time. A clock that goes back makes an entry stale at once."""

    def __init__(self, store: Store, ttl: float, clock: Callable[[], float], capacity: int = TENANT_CACHE_KEYS) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._kept: LruCache[str, tuple[float, Tenant]] = LruCache(capacity)
        self.reads = 0  # store reads made (the rest were answered from memory)

    async def get(self, widget_key: str) -> Tenant:
        """The tenant, or `NotFound`."""
        now = self.clock()
        kept = self._kept.get(widget_key) if self.ttl > 0 else None
        if kept is not None and 0.0 <= now - kept[0] < self.ttl:
            return kept[1]
        self.reads += 1
        tenant = await self.store.get_tenant_by_widget_key(widget_key)
        if self.ttl > 0:
            self._kept.put(widget_key, (now, tenant))
        return tenant


class Handshake:
    def __init__(self, store: Store, tokens: VisitorTokens, clock: Callable[[], float],
                 tenant_cache_seconds: float = 0.0) -> None:
        """`tenant_cache_seconds`: how long a widget key's tenant is reused (`TenantsByWidgetKey`)."""
        self.store = store
        self.tokens = tokens
        self.clock = clock
        self.tenants = TenantsByWidgetKey(store, tenant_cache_seconds, clock)
        self._agents: dict[tuple[str, str, AgentRole, str], AgentPrincipal] = {}

    def _agent_principal(self, tenant_id: str, agent_id: str, role: AgentRole, name: str) -> AgentPrincipal:
        key = (tenant_id, agent_id, role, name)
        p = self._agents.get(key)
        if p is None:
            if len(self._agents) >= PRINCIPAL_CACHE:
                self._agents.clear()
            p = self._agents[key] = AgentPrincipal(sys.intern(tenant_id), sys.intern(agent_id), role, name)
        return p

    async def agent(self, auth: Any) -> AgentPrincipal:
        obj = as_object(auth, "auth")
        token = obj.get("token")
        if not isinstance(token, str) or not token or len(token) > 200:
            raise GatewayError(Code.UNAUTHORIZED, "an agent token is required in auth.token")
        try:
            agent = await self.store.get_agent_by_token_hash(hash_token(token))
            tenant = await self.store.get_tenant(agent.tenant_id)
        except NotFound:
            raise GatewayError(Code.UNAUTHORIZED, "invalid agent token") from None
        if tenant.status != TenantStatus.ACTIVE:
            raise GatewayError(Code.FORBIDDEN, "this account is not active")
        return self._agent_principal(agent.tenant_id, agent.id, agent.role, agent.name)

    async def visitor(self, auth: Any) -> VisitorSession:
        obj = as_object(auth, "auth")
        key = obj.get("widget_key")
        if not isinstance(key, str) or not key or len(key) > 200:
            raise GatewayError(Code.UNAUTHORIZED, "auth.widget_key is required")
        try:
            tenant = await self.tenants.get(key)
        except NotFound:
            raise GatewayError(Code.UNAUTHORIZED, "unknown widget key") from None
        if tenant.status != TenantStatus.ACTIVE:
            raise GatewayError(Code.FORBIDDEN, "this account is not active")
        now = self.clock()
        name, email = opt_str(obj, "name", max_len=200), opt_str(obj, "email", max_len=320)
        claims: VisitorClaims | None = None
        raw_token = obj.get("visitor_token")
        if isinstance(raw_token, str) and raw_token:
            claims = self.tokens.verify(raw_token, tenant.id, now)
        visitor_id = claims.visitor_id if claims else uuid.uuid4().hex

        identity = obj.get("identity")
        if identity is not None:
            ident = as_object(identity, "auth.identity")
            ident_id, ident_hash = ident.get("id"), ident.get("hash")
            if (
                not isinstance(ident_id, str) or not ident_id or len(ident_id) > 200
                or not isinstance(ident_hash, str) or len(ident_hash) > 200
                or not verify_identity(tenant.identity_secret, ident_id, ident_hash)
            ):
                raise GatewayError(Code.INVALID_IDENTITY, "the identity hash does not match")
            contact = await self.store.get_or_create_contact_by_identity(
                tenant.id, "external", ident_id, name=name, email=email, now=now
            )
            identified = True
        elif tenant.require_identity:
            raise GatewayError(Code.IDENTITY_REQUIRED, "this site requires a verified identity")
        elif claims is not None:
            try:
                contact = await self.store.get_contact(tenant.id, claims.contact_id)
            except NotFound:  # erased since: start afresh
                contact = await self.store.get_or_create_contact_by_identity(
                    tenant.id, "visitor", visitor_id, name=name, email=email, now=now
                )
            identified = False
        else:
            contact = await self.store.get_or_create_contact_by_identity(
                tenant.id, "visitor", visitor_id, name=name, email=email, now=now
            )
            identified = False
        if (name and not contact.name) or (email and not contact.email):
            fields = {k: v for k, v in (("name", name), ("email", email)) if v}
            contact = await self.store.update_contact(tenant.id, contact.id, fields)
        principal = VisitorPrincipal(sys.intern(tenant.id), visitor_id, contact.id)
        token = self.tokens.issue(VisitorClaims(tenant.id, visitor_id, contact.id, now))
        return VisitorSession(principal, token, identified)
