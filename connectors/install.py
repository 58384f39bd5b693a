"""Wire the connectors into a gateway: stores, inbound pipeline, connectors, outbox."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from connectors.base import Connector
from connectors.channels import ChannelStore
from connectors.context import ConnectorContext
from connectors.crypto import MasterKeyError, SecretBox, load_master_key
from connectors.email.connector import EmailConnector
from connectors.inbound import InboundPipeline
from connectors.links import ErasedContactCheck, LinkStore
from connectors.outbox import Outbox
from connectors.registry import build_connectors
from connectors.settings import load_connector_settings
from gateway.config import Config
from gateway.core.domain import Channel

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ConnectorHub:
    ctx: ConnectorContext
    outbox: Outbox
    connectors: dict[Channel, Connector] = field(default_factory=dict)
    started: bool = False

    async def start(self) -> None:
        self.started = True
        for channel, c in list(self.connectors.items()):
            try:
                await c.start(self.ctx.inbound)
            except Exception:
                log.exception("connector %s failed to start; channel disabled", channel.value)
                self.connectors.pop(channel, None)
        if self.ctx.settings.outbox.autostart:
            self.outbox.start()

    async def stop(self) -> None:
        await self.outbox.stop()
        for channel, c in list(self.connectors.items()):
            try:
                await c.stop()
            except Exception:
                log.exception("connector %s failed to stop cleanly", channel.value)
        self.started = False

    async def use(self, connector: Connector) -> None:
        """Put `connector` in charge of its channel (replacing any other; tests and plugins).
        Its webhook routes are not mounted: routes exist only for registry connectors."""
        old = self.connectors.get(connector.channel)
        if old is not None and self.started:
            await old.stop()
        if self.started:
            await connector.start(self.ctx.inbound)
        self.connectors[connector.channel] = connector


CONNECTORS_KEY = web.AppKey("connectors", ConnectorHub)


def is_embedded(config: Config) -> bool:
    url = config.storage.database_url
    return not url or url.startswith("sqlite:")


def master_box(config: Config, master_key: str | None) -> SecretBox:
    """Raise `MasterKeyError` (clear message) when no key is available."""
    return SecretBox(load_master_key(master_key, data_dir=config.storage.data_dir, embedded=is_embedded(config)))


async def install(gw: Gateway) -> None:
    settings = load_connector_settings(os.environ)
    try:
        box = master_box(gw.config, settings.master_key)
    except MasterKeyError as exc:
        log.error("connectors disabled: %s", exc)
        return
    channels = ChannelStore(gw.db, box, gw.clock)
    links = LinkStore(gw.db, gw.clock)
    inbound = InboundPipeline(gw.store, gw.chat, links, gw.clock)
    ctx = ConnectorContext(
        config=gw.config, settings=settings, store=gw.store, db=gw.db, chat=gw.chat, channels=channels,
        links=links, inbound=inbound, box=box, node_id=gw.node_id, clock=gw.clock,
    )
    connectors = build_connectors(ctx)
    outbox = Outbox(db=gw.db, store=gw.store, chat=gw.chat, links=links, connectors=connectors,
                    settings=settings.outbox, node_id=gw.node_id, clock=gw.clock)
    hub = ConnectorHub(ctx, outbox, connectors)
    for c in connectors.values():
        gw.app.add_routes(c.routes())
    gw.chat.message_listeners.append(outbox.on_message)
    gw.chat.send_checks.append(ErasedContactCheck(links))
    gw.app[CONNECTORS_KEY] = hub
    if not gw.config.storage.database_url:  # one node owns the outbox: take back what a crash left sending
        async def reclaim() -> None:
            await outbox.reclaim_all()

        gw.on_start.append(reclaim)
    gw.on_start.append(hub.start)
    gw.on_stop.append(hub.stop)
    email = connectors.get(Channel.EMAIL)
    if isinstance(email, EmailConnector):
        imap = email.imap
        m = gw.metrics
        m.counter_fn("izh_email_imap_polls_total", "Polls of IMAP email inboxes", lambda: float(imap.polls))
        m.counter_fn("izh_email_imap_failures_total", "Polls of IMAP email inboxes that failed (logged)",
                     lambda: float(imap.failures))
        m.counter_fn("izh_email_imap_mails_total", "Mails read by IMAP polling and flagged seen",
                     lambda: float(imap.mails))
        m.counter_fn("izh_email_imap_left_to_others_total",
                     "Periodic polls of an IMAP inbox skipped: another node's claim of it was running",
                     lambda: float(imap.left_to_others))
        m.gauge("izh_email_imap_idle_connections", "IMAP inboxes this node keeps an IDLE connection to",
                lambda: float(imap.watching))
        m.counter_fn("izh_email_imap_idle_wakes_total", "Polls of an IMAP inbox started by IDLE (new mail announced)",
                     lambda: float(imap.idle_wakes))
