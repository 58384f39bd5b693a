"""The search feature: full-text search over a tenant's messages and contacts for agents
(the `/agent` namespace's `search` event and `GET /api/v1/search`), on the engine of the
node's store (gateway/search/store.py, migrations 0013 and 0019). On SQLite it indexes the
messages stored meanwhile every `INDEX_INTERVAL` seconds, off the append path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from gateway.aio.periodic import Periodic
from gateway.extension import Command, EventHandler, Extension, Host, SealedColumn
from gateway.http.api import Api, query_ints
from gateway.realtime.context import Conn
from gateway.search.service import Search
from gateway.search.store import SearchStore

INDEX_INTERVAL = 1.0  # seconds between background catch-ups of the SQLite index


class SearchFeature:
    name = "search"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        repo = SearchStore(host.db, sqlite=host.config.embedded)
        search = Search(repo)
        api = Api(host.chat, host.store, host.config)

        async def on_event(conn: Conn, p: Mapping[str, Any]) -> dict[str, Any]:
            return await search.run(conn.tenant_id, p)

        async def on_get(request: web.Request) -> web.Response:
            principal = await api.principal(request)
            return web.json_response(await search.run(principal.tenant_id, query_ints(request.query, "limit")))

        async def catch_up() -> None:
            await repo.catch_up()

        indexer = Periodic("search-index", catch_up, INDEX_INTERVAL if repo.sqlite else 0.0, delay=INDEX_INTERVAL)

        async def start() -> None:
            indexer.start()

        events: dict[str, EventHandler] = {"search": on_event}
        return Extension(agent_events=events, routes=[web.get("/api/v1/search", on_get)],
                         on_start=(start,), on_stop=(indexer.stop,))
