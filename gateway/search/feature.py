"""The search feature: full-text search over a tenant's messages and contacts for agents
(the `/agent` namespace's `search` event and `GET /api/v1/search`), on the engine of the
node's store (gateway/search/store.py, migration 0013)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from gateway.extension import Command, EventHandler, Extension, Host, SealedColumn
from gateway.http.api import Api, query_ints
from gateway.realtime.context import Conn
from gateway.search.service import Search
from gateway.search.store import SearchStore


class SearchFeature:
    name = "search"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        search = Search(SearchStore(host.db, sqlite=host.config.embedded))
        api = Api(host.chat, host.store, host.config)

        async def on_event(conn: Conn, p: Mapping[str, Any]) -> dict[str, Any]:
            return await search.run(conn.tenant_id, p)

        async def on_get(request: web.Request) -> web.Response:
            principal = await api.principal(request)
            return web.json_response(await search.run(principal.tenant_id, query_ints(request.query, "limit")))

        events: dict[str, EventHandler] = {"search": on_event}
        return Extension(agent_events=events, routes=[web.get("/api/v1/search", on_get)])
