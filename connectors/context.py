"""`ConnectorContext`: everything a connector class gets in its constructor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.channels import ChannelRepository
from connectors.inbound import InboundPipeline
from connectors.links import LinkRepository
from connectors.settings import ConnectorSettings
from gateway.chat.service import ChatService
from gateway.config import Config
from gateway.security.crypto import SecretBox
from gateway.store import Store
from gateway.store.db import Database


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    config: Config  # gateway config (data_dir, public_url, limits)
    settings: ConnectorSettings  # connector env settings (SMTP_*, OUTBOX_*)
    store: Store
    db: Database  # for a connector's own tables (its own migration file)
    chat: ChatService
    channels: ChannelRepository  # tenant inboxes: find_by_address / for_tenant / credentials
    links: LinkRepository  # conversation → inbox + recipient
    inbound: InboundPipeline  # `await ctx.inbound.deliver(msg)` when the caller needs the result
    box: SecretBox  # master-key box (derive() for HMAC keys)
    node_id: str
    clock: Callable[[], float]
