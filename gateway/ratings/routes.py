"""The ratings' Socket.IO event and REST routes (docs/protocol.md, docs/openapi.yaml):

/visitor `conversation:rate` {conversation_id, score, comment?} → {ok, rating}
GET /api/v1/conversations/{id}/ratings   the conversation's ratings (agents)
GET /api/v1/ratings?limit=               the tenant's latest ratings (agents)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.chat.principals import AgentPrincipal
from gateway.core.errors import bad_request
from gateway.core.validation import opt_int, req_id
from gateway.ratings.service import Ratings, parse_rating, rating_dict
from gateway.realtime.context import Conn

Principal = Callable[[web.Request], Awaitable[AgentPrincipal]]


class RatingHandlers:
    def __init__(self, ratings: Ratings, principal: Principal) -> None:
        self.ratings = ratings
        self._principal = principal

    async def rate(self, conn: Conn, p: Mapping[str, Any]) -> dict[str, Any]:
        conv_id = req_id(p, "conversation_id")
        score, comment = parse_rating(p)
        rating = await self.ratings.rate(conn.visitor, conv_id, score, comment)
        return {"ok": True, "rating": rating_dict(rating)}

    async def conversation_ratings(self, request: web.Request) -> web.Response:
        p = await self._principal(request)
        conv_id = req_id({"id": request.match_info["id"]}, "id")
        rows = await self.ratings.of_conversation(p, conv_id)
        return web.json_response({"ok": True, "ratings": [rating_dict(r) for r in rows]})

    async def recent(self, request: web.Request) -> web.Response:
        p = await self._principal(request)
        try:
            limit = opt_int({"limit": int(request.query.get("limit", "50"))}, "limit", 50, lo=1, hi=500)
        except ValueError:
            raise bad_request("'limit' must be an integer", field="limit") from None
        rows = await self.ratings.recent(p, limit)
        return web.json_response({"ok": True, "ratings": [rating_dict(r) for r in rows]})

    def routes(self, base: str = "/api/v1") -> list[web.RouteDef]:
        return [web.get(f"{base}/conversations/{{id}}/ratings", self.conversation_ratings),
                web.get(f"{base}/ratings", self.recent)]
