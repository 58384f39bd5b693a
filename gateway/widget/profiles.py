"""What a visitor may know of the agents who answer it: `agent:profiles` on /visitor.

Contract: given at most `MAX_IDS` agent ids, the display name and initials of those that
are agents of the visitor's tenant (unknown ids and other tenants' agents are left out);
nothing else about them (no role, status or capacity)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.core.errors import bad_request
from gateway.core.validation import req_id
from gateway.realtime.context import Conn
from gateway.store import NotFound, Store

MAX_IDS = 20


def initials(name: str) -> str:
    """Up to two capital letters from the name's first and last words ("Lan Anh" → "LA")."""
    words = name.split()
    if not words:
        return "?"
    picked = [words[0], words[-1]] if len(words) > 1 else [words[0]]
    return "".join(w[0] for w in picked).upper()


class AgentProfiles:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def profiles(self, conn: Conn, p: Mapping[str, Any]) -> dict[str, Any]:
        raw = p.get("ids")
        if not isinstance(raw, list) or not 0 < len(raw) <= MAX_IDS:
            raise bad_request(f"'ids' must be a list of 1 to {MAX_IDS} agent ids", field="ids")
        ids = list(dict.fromkeys(req_id({"ids": i}, "ids") for i in raw))
        out = []
        for agent_id in ids:
            try:
                agent = await self.store.get_agent(conn.tenant_id, agent_id)
            except NotFound:
                continue
            out.append({"id": agent.id, "name": agent.name, "initials": initials(agent.name)})
        return {"ok": True, "agents": out}
