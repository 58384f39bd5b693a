"""Cluster-wide gauges read from the database every `interval` seconds (scrape callbacks
cannot query asynchronously), declared by the features (`Extension.db_gauges`): the
outbox backlog, calls in progress, recordings stored."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.aio.periodic import Periodic
from gateway.ops.metrics import Metrics
from gateway.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DbGauge:
    """A gauge `name` whose value `sql` reads (one row, one number named `n`)."""

    name: str
    help: str
    sql: str


class DbGauges:
    def __init__(self, db: Database, metrics: Metrics, gauges: Sequence[DbGauge], interval: float = 15.0) -> None:
        self.db = db
        self.interval = interval
        self.gauges = tuple(gauges)
        self.values: dict[str, float] = {g.name: 0.0 for g in self.gauges}
        self._periodic = Periodic("db-gauges", self.refresh, interval)
        for g in self.gauges:
            metrics.gauge(g.name, g.help, lambda name=g.name: self.values[name])  # type: ignore[misc]

    async def refresh(self) -> None:
        for g in self.gauges:
            try:
                async with self.db.reader() as conn:
                    row = await conn.fetchrow(g.sql)
                self.values[g.name] = float(row["n"]) if row else 0.0
            except Exception as exc:  # a database outage: the next refresh tries again
                log.debug("gauge %s not refreshed: %s", g.name, type(exc).__name__)

    async def start(self) -> None:
        if self.gauges:
            self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
