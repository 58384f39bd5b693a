"""Which class implements which channel: ONE line per channel.

Values are ``"module:Class"``; the class is constructed as ``Class(ctx: ConnectorContext)``
and must implement `connectors.base.Connector`. Imported lazily, so one broken connector
is logged and skipped without taking the others down.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, cast

from gateway.core.domain import Channel

if TYPE_CHECKING:
    from connectors.base import Connector
    from connectors.context import ConnectorContext

log = logging.getLogger(__name__)

CONNECTORS: Mapping[Channel, str] = MappingProxyType({
    Channel.EMAIL: "connectors.email.connector:EmailConnector",
    Channel.COMMENTS: "connectors.comments.connector:CommentsConnector",
    Channel.FACEBOOK: "connectors.facebook.connector:FacebookConnector",
    Channel.ZALO: "connectors.zalo.gateway:ZaloGatewayConnector",
    Channel.YOUTUBE: "connectors.youtube.service:YouTubeChannelConnector",
})


def load_factory(spec: str) -> Callable[[ConnectorContext], Connector]:
    module, _, name = spec.partition(":")
    return cast("Callable[[ConnectorContext], Connector]", getattr(importlib.import_module(module), name))


def build_connectors(ctx: ConnectorContext, registry: Mapping[Channel, str] = CONNECTORS) -> dict[Channel, Connector]:
    out: dict[Channel, Connector] = {}
    for channel, spec in registry.items():
        try:
            out[channel] = load_factory(spec)(ctx)
        except Exception:
            log.exception("connector %s (%s) could not be built; channel disabled", channel.value, spec)
    return out
