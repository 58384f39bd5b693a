"""`install(gw)`: wire the widget feature into a built gateway (one line in install_features)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gateway.http.api import Api
from gateway.security.auth import new_secret
from gateway.widget.routes import WidgetRoutes
from gateway.widget.store import WidgetStore
from gateway.widget.uploads import Uploads

if TYPE_CHECKING:
    from gateway.app import Gateway

# widget/dist of the source tree (built by scripts/run.sh and scripts/test.sh)
DEFAULT_DIST = Path(__file__).resolve().parents[2] / "widget" / "dist"


async def install(gw: Gateway, *, dist: Path = DEFAULT_DIST) -> None:
    cfg = gw.config
    if cfg.server.widget_dist:
        dist = Path(cfg.server.widget_dist)
    widget_store = WidgetStore(gw.db)
    secret = await gw.store.get_or_create_setting("upload_url_secret", new_secret())
    uploads = Uploads(widget_store, gw.store, Path(cfg.storage.data_dir) / "uploads",
                      max_bytes=cfg.limits.max_upload_bytes, secret=secret, clock=gw.clock,
                      public_url=cfg.server.public_url)
    gw.chat.attachment_resolver = uploads.resolve
    gw.chat.attachment_exporter = uploads.export
    routes = WidgetRoutes(
        api=Api(gw.chat, gw.store, cfg), store=gw.store, widget_store=widget_store, uploads=uploads,
        verify_token=gw.realtime.handshake.tokens.verify, cors_origins=cfg.server.cors_origins, dist=dist,
        data_dir=Path(cfg.storage.data_dir), clock=gw.clock,
    )
    gw.app.add_routes(routes.routes())
