"""The connectors feature: channel stores, the inbound pipeline, the connectors (email,
Facebook, Zalo, YouTube, comments) and the outbox, declared to the core as an `Extension`;
and the CLI's `channel` command."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from aiohttp import web

from connectors.admin_routes import ChannelsApi, channel_routes
from connectors.attachments import AttachmentStore, RemoteFiles
from connectors.audit import SqlAuditRepository
from connectors.base import Connector
from connectors.channels import SEALED_CREDENTIALS, ChannelStore
from connectors.cli import configure_channel_parser, master_box, run_channel_command
from connectors.context import ConnectorContext
from connectors.email.connector import EmailConnector
from connectors.email.imap import ImapPoller
from connectors.inbound import InboundPipeline
from connectors.links import ErasedContactCheck, LinkStore
from connectors.outbox import Outbox
from connectors.outbox_repository import SqlOutboxRepository
from connectors.probes import channel_probe
from connectors.registry import build_connectors
from connectors.settings import load_connector_settings
from gateway.core.domain import Channel
from gateway.extension import Command, DbGauge, Extension, Hook, Host
from gateway.http.api import Api
from gateway.ops.metrics import Reading
from gateway.security.crypto import MasterKeyError

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


def imap_metrics(imap: ImapPoller) -> list[Reading]:
    return [
        Reading("izh_email_imap_polls_total", "Polls of IMAP email inboxes", lambda: float(imap.polls)),
        Reading("izh_email_imap_failures_total", "Polls of IMAP email inboxes that failed (logged)",
                lambda: float(imap.failures)),
        Reading("izh_email_imap_mails_total", "Mails read by IMAP polling and flagged seen",
                lambda: float(imap.mails)),
        Reading("izh_email_imap_left_to_others_total",
                "Periodic polls of an IMAP inbox skipped: another node's claim of it was running",
                lambda: float(imap.left_to_others)),
        Reading("izh_email_imap_idle_connections", "IMAP inboxes this node keeps an IDLE connection to",
                lambda: float(imap.watching)),
        Reading("izh_email_imap_idle_wakes_total", "Polls of an IMAP inbox started by IDLE (new mail announced)",
                lambda: float(imap.idle_wakes)),
    ]


class ConnectorsFeature:
    """Without a master key (PostgreSQL and no MASTER_KEY) the connectors are off: logged, and
    the feature adds nothing."""

    name = "connectors"
    commands = (Command(("channel",), "tenant channel inboxes (email, facebook, zalo, youtube, comments)",
                        configure_channel_parser, run_channel_command, seals=True),)
    sealed = (SEALED_CREDENTIALS,)

    async def build(self, host: Host) -> Extension:
        settings = load_connector_settings(os.environ)
        try:
            box = master_box(host.config, settings.master_key)
        except MasterKeyError as exc:
            log.error("connectors disabled: %s", exc)
            return Extension()
        channels = ChannelStore(host.db, box, host.clock)
        links = LinkStore(host.db, host.clock)
        remote = RemoteFiles(AttachmentStore(host.chat, host.config.limits.max_upload_bytes))
        inbound = InboundPipeline(host.store, host.chat, links, host.clock, remote)
        ctx = ConnectorContext(
            config=host.config, settings=settings, store=host.store, db=host.db, chat=host.chat, channels=channels,
            links=links, inbound=inbound, box=box, node_id=host.node_id, clock=host.clock,
        )
        connectors = build_connectors(ctx)
        outbox = Outbox(rows=SqlOutboxRepository(host.db), store=host.store, chat=host.chat, links=links,
                        connectors=connectors, settings=settings.outbox, node_id=host.node_id, clock=host.clock)
        hub = ConnectorHub(ctx, outbox, connectors)
        on_start: list[Hook] = []
        if not host.config.storage.database_url:  # one node owns the outbox: take back what a crash left sending
            async def reclaim() -> None:
                await outbox.reclaim_all()

            on_start.append(reclaim)
        on_start.append(hub.start)
        email = connectors.get(Channel.EMAIL)
        core = Api(host.chat, host.store, host.config)
        return Extension(
            routes=[*(r for c in connectors.values() for r in c.routes()),
                    *channel_routes(ChannelsApi(channels, core.principal, core.body,
                                                channel_probe(channels, host.db, host.node_id, host.clock),
                                                SqlAuditRepository(host.db)))],
            message_listeners=[outbox.on_message],
            send_checks=[ErasedContactCheck(links)],
            metrics=imap_metrics(email.imap) if isinstance(email, EmailConnector) else (),
            db_gauges=[DbGauge("izh_outbox_backlog", "Outbound channel messages queued or being sent (whole cluster)",
                               "SELECT COUNT(*) AS n FROM connector_outbox WHERE state IN ('queued', 'sending')")],
            on_start=on_start,
            on_stop=[hub.stop, remote.close],
            app_state={CONNECTORS_KEY: hub},
        )
