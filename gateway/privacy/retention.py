"""Retention: delete a tenant's data N years after its subscription ended, and expire
message contents per tenant policy.

Tenant deletion covers every table with a `tenant_id` column (discovered from the live
schema, so feature tables are included; children before parents), the tenant row, and every
blob under `<folder>/<tenant_id>/` of the blob store for each of `TENANT_FOLDERS` (uploads,
attachments, recordings, exports: on local disk or in the bucket). Recordings are thereby also
crypto-shredded: the tenant's sealed recording identities (`recording_keys`) are deleted with
the rest. Expired messages keep their row (so `seq` streams stay gap-free) with text and
attachments blanked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.aio.periodic import Periodic
from gateway.blobs import BlobStore, delete_prefix
from gateway.privacy.store import PrivacyRepository

log = logging.getLogger(__name__)

YEAR = 365.25 * 24 * 3600


@dataclass
class TenantDeletion:
    tenant_id: str
    ended_at: float
    rows: dict[str, int]
    files: int
    bytes: int


@dataclass
class RetentionReport:
    dry_run: bool
    tenants: list[TenantDeletion] = field(default_factory=list)
    expired_messages: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "tenants": [{"tenant_id": t.tenant_id, "ended_at": t.ended_at, "rows": t.rows, "files": t.files,
                         "bytes": t.bytes} for t in self.tenants],
            "expired_messages": self.expired_messages,
        }


TENANT_FOLDERS = ("uploads", "attachments", "recordings", "exports")  # blob key folders holding <tenant_id>/


def tenant_prefixes(tenant_id: str) -> list[str]:
    if not tenant_id or "/" in tenant_id or tenant_id.startswith("."):
        return []
    return [f"{folder}/{tenant_id}/" for folder in TENANT_FOLDERS]


async def measure(blobs: BlobStore, prefixes: list[str]) -> tuple[int, int]:
    files = size = 0
    for prefix in prefixes:
        async for info in blobs.list(prefix):
            files += 1
            size += info.size
    return files, size


class Retention:
    def __init__(self, store: PrivacyRepository, blobs: BlobStore, years: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.blobs = blobs
        self.years = years
        self.clock = clock

    async def run(self, *, dry_run: bool = False, actor: str = "retention") -> RetentionReport:
        now = self.clock()
        report = RetentionReport(dry_run)
        for tenant_id, ended_at in await self.store.ended_tenants(now - self.years * YEAR):
            prefixes = tenant_prefixes(tenant_id)
            files, size = await measure(self.blobs, prefixes)
            if dry_run:
                rows = await self.store.count_tenant_rows(tenant_id)
            else:
                rows = await self.store.delete_tenant_rows(tenant_id)
                for prefix in prefixes:
                    await delete_prefix(self.blobs, prefix)
                await self.store.audit(tenant_id, actor, "tenant.deleted", tenant_id,
                                       {"rows": rows, "files": files, "bytes": size, "ended_at": ended_at})
                log.info("retention: deleted tenant %s (%d rows, %d files)", tenant_id, sum(rows.values()), files)
            report.tenants.append(TenantDeletion(tenant_id, ended_at, rows, files, size))
        for tenant_id, days in await self.store.policies_with_retention():
            n = await self.store.expire_messages(tenant_id, now - days * 86400.0, dry_run=dry_run)
            if n:
                report.expired_messages[tenant_id] = n
                if not dry_run:
                    await self.store.audit(tenant_id, actor, "messages.expired", tenant_id,
                                           {"messages": n, "days": days})
        return report


class RetentionScheduler:
    """Runs `Retention.run` every `interval` seconds inside the gateway (first run after `delay`)."""

    def __init__(self, retention: Retention, interval: float, delay: float = 60.0) -> None:
        self.retention = retention
        self.interval = interval
        self.delay = delay
        self.runs = 0
        self._periodic = Periodic("retention", self._run_once, interval, delay=delay)

    async def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _run_once(self) -> None:
        report = await self.retention.run()
        self.runs += 1
        if report.tenants or report.expired_messages:
            log.info("retention run: %s", report.to_dict())
