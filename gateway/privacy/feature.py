"""The privacy feature: retention (scheduled deletion past the retention period), data-subject
requests (export, erasure) over REST, the audit of contact corrections, and the CLI's
`retention run` and `tenant end`."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.extension import Command, Extension, Host, SealedColumn
from gateway.http.api import Api
from gateway.ops.metrics import Reading
from gateway.privacy.cli import configure_retention, configure_tenant_end, run_retention, run_tenant_end
from gateway.privacy.dsr import Dsr, ForgetsHistory
from gateway.privacy.retention import Retention, RetentionScheduler
from gateway.privacy.routes import PrivacyApi, privacy_routes
from gateway.privacy.store import privacy_store

RETENTION_KEY = web.AppKey("retention", RetentionScheduler)


class PrivacyFeature:
    name = "privacy"
    commands = (
        Command(("tenant", "end"), "record the end of a tenant's subscription (starts its retention clock)",
                configure_tenant_end, run_tenant_end),
        Command(("retention",), "delete data past its retention period", configure_retention, run_retention),
    )

    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        cfg = host.config
        store = privacy_store(host.db, sqlite=cfg.embedded)
        retention = RetentionScheduler(
            Retention(store, host.blobs, cfg.privacy.retention_years, host.clock),
            cfg.privacy.retention_interval)

        async def audit_correction(tenant_id: str, contact_id: str, actor: str, fields: list[str]) -> None:
            await store.audit(tenant_id, actor, "contact.corrected", contact_id, {"fields": fields})

        core = Api(host.chat, host.store, cfg)
        forget = host.store.forget_history if isinstance(host.store, ForgetsHistory) else None
        routes = privacy_routes(PrivacyApi(store, Dsr(store, host.blobs, forget), core.principal,
                                           core.body))
        return Extension(
            routes=routes,
            contact_listeners=[audit_correction],
            metrics=[Reading("izh_retention_runs_total", "Scheduled retention runs completed",
                             lambda: retention.runs)],
            on_start=[retention.start],
            on_stop=[retention.stop],
            app_state={RETENTION_KEY: retention},
        )
