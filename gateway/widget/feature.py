"""The widget feature: the visitor widget's pages and assets, its REST routes, and uploads
(the attachment keeper of chat: upload ids of `message:send` → attachment dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from gateway.aio.periodic import Periodic
from gateway.chat.service import Attachments
from gateway.extension import Command, Extension, Host, SealedColumn
from gateway.http.api import Api
from gateway.security.auth import new_secret
from gateway.widget.profiles import AgentProfiles
from gateway.widget.routes import WidgetRoutes
from gateway.widget.store import WidgetStore
from gateway.widget.uploads import Uploads

# widget/dist of the source tree (built by scripts/run.sh and scripts/test.sh)
DEFAULT_DIST = Path(__file__).resolve().parents[2] / "widget" / "dist"
UPLOADS_KEY = web.AppKey("uploads", Uploads)
MAX_SWEEP_INTERVAL = 3600.0  # seconds between sweeps of never-attached uploads, at most


class WidgetFeature:
    name = "widget"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    def __init__(self, dist: Path = DEFAULT_DIST) -> None:
        """`dist`: the built widget, unless the configuration names one (WIDGET_DIST)."""
        self.dist = dist

    async def build(self, host: Host) -> Extension:
        cfg = host.config
        dist = Path(cfg.server.widget_dist) if cfg.server.widget_dist else self.dist
        widget_store = WidgetStore(host.db)
        secret = await host.store.get_or_create_setting("upload_url_secret", new_secret())
        uploads = Uploads(widget_store, host.store, host.blobs,
                          max_bytes=cfg.limits.max_upload_bytes, secret=secret, clock=host.clock,
                          public_url=cfg.server.public_url)
        routes = WidgetRoutes(
            api=Api(host.chat, host.store, cfg), store=host.store, widget_store=widget_store, uploads=uploads,
            verify_token=host.tokens.verify, cors_origins=cfg.server.cors_origins, dist=dist,
            data_dir=Path(cfg.storage.data_dir), clock=host.clock, max_text_chars=cfg.limits.max_text_chars,
        )
        ttl = cfg.storage.blobs.orphan_ttl

        async def sweep() -> None:
            await uploads.sweep_orphans(ttl)

        sweeper = Periodic("upload-orphans", sweep, min(MAX_SWEEP_INTERVAL, ttl / 4), delay=60.0)

        async def start() -> None:
            sweeper.start()

        return Extension(routes=routes.routes(),
                         attachments=Attachments(uploads.resolve, uploads.export, uploads.keep),
                         message_listeners=(uploads.bind_stored,), on_start=(start,), on_stop=(sweeper.stop,),
                         app_state={UPLOADS_KEY: uploads},
                         visitor_events={"agent:profiles": AgentProfiles(host.store).profiles})
