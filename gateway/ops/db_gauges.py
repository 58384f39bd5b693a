"""Cluster-wide gauges read from the database every `interval` seconds (scrape callbacks
cannot query asynchronously): outbox backlog, calls in progress, recordings stored.
Tables a feature has not installed are skipped."""

from __future__ import annotations

import logging

from gateway.aio.periodic import Periodic
from gateway.ops.metrics import Metrics
from gateway.store.db import Database

log = logging.getLogger(__name__)

QUERIES: dict[str, tuple[str, str]] = {
    # gauge name → (table, SELECT giving one number as n)
    "izh_outbox_backlog": ("connector_outbox",
                           "SELECT COUNT(*) AS n FROM connector_outbox WHERE state IN ('queued', 'sending')"),
    "izh_calls_active": ("calls", "SELECT COUNT(*) AS n FROM calls WHERE state IN ('ringing', 'active', 'answered')"),
    "izh_recording_bytes": ("recordings", "SELECT COALESCE(SUM(size), 0) AS n FROM recordings"),
    "izh_recordings": ("recordings", "SELECT COUNT(*) AS n FROM recordings"),
}
DOCS = {
    "izh_outbox_backlog": "Outbound channel messages queued or being sent (whole cluster)",
    "izh_calls_active": "Calls ringing or in progress (whole cluster)",
    "izh_recording_bytes": "Bytes of call recordings stored (whole cluster)",
    "izh_recordings": "Call recordings stored (whole cluster)",
}


class DbGauges:
    def __init__(self, db: Database, metrics: Metrics, interval: float = 15.0) -> None:
        self.db = db
        self.interval = interval
        self.values: dict[str, float] = dict.fromkeys(QUERIES, 0.0)
        self._periodic = Periodic("db-gauges", self.refresh, interval)
        for name in QUERIES:
            metrics.gauge(name, DOCS[name], lambda name=name: self.values[name])  # type: ignore[misc]

    async def refresh(self) -> None:
        for name, (_, sql) in QUERIES.items():
            try:
                async with self.db.reader() as conn:
                    row = await conn.fetchrow(sql)
                self.values[name] = float(row["n"]) if row else 0.0
            except Exception as exc:  # the feature's table may not exist
                log.debug("gauge %s not refreshed: %s", name, type(exc).__name__)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
