"""The ratings feature: the visitor's `conversation:rate` event, the agents' REST routes, the
`conversation_ratings` table (erased with the contact by gateway/privacy), and its metrics."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.extension import Command, DbGauge, Extension, Host, Reading, SealedColumn
from gateway.http.api import Api
from gateway.ratings.routes import RatingHandlers
from gateway.ratings.service import Ratings
from gateway.ratings.store import RatingStore

DB_GAUGES = (
    DbGauge("izh_ratings", "Satisfaction ratings stored (whole cluster)",
            "SELECT COUNT(*) AS n FROM conversation_ratings"),
)


class RatingsFeature:
    name = "ratings"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        ratings = Ratings(RatingStore(host.db), host.chat, host.clock)
        handlers = RatingHandlers(ratings, Api(host.chat, host.store, host.config).principal)
        return Extension(
            visitor_events={"conversation:rate": handlers.rate},
            routes=handlers.routes(),
            metrics=[Reading("izh_ratings_submitted_total", "Satisfaction ratings stored by this process",
                             lambda: ratings.submitted)],
            db_gauges=DB_GAUGES,
        )
