"""The extension API: how a feature plugs into the core.

A feature (calls, widget, connectors, admission, privacy) is an object satisfying
`Feature`: a name, the CLI subcommands it adds (`commands`), the columns of its tables
holding values sealed under the master key (`sealed`), and `build(host)`, which gets
the core's services (`Host`) and returns an `Extension`: a frozen declaration of what it
adds — Socket.IO events, node RPC methods, HTTP routes and middlewares, admission checks,
chat listeners and checks, an attachment keeper, metrics, start/stop hooks and objects
published on the application. `gateway.app.build_gateway` is given the features (the
composition root, `gateway.composition`, chooses them), builds each, and composes their
declarations into the core's components at construction; the collections a component
reads at run time are frozen before the gateway starts (`gateway.core.hooks`). A feature
never changes a core object: it declares. The core imports no feature
(tests/unit/test_import_graph.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.blobs import BlobStore
from gateway.broker import Broker
from gateway.chat.service import Attachments, ChatService, ContactListener, MessageListener, SendCheck
from gateway.cluster.noderpc import Handler as RpcMethod
from gateway.cluster.noderpc import NodeRpc
from gateway.cluster.supervisor import WorkerIdentity
from gateway.config import Config
from gateway.edge import Admission as SessionAdmission
from gateway.ops.db_gauges import DbGauge
from gateway.ops.metrics import Metrics, Reading
from gateway.realtime.fanout import Fanout
from gateway.realtime.handlers import Handler as EventHandler
from gateway.realtime.server import Gate
from gateway.security.auth import VisitorTokens
from gateway.security.sealed import SealedColumn
from gateway.store import Store
from gateway.store.db import Database, StoreDatabase

__all__ = [
    "Admission",
    "Command",
    "CommandEnv",
    "DbGauge",
    "EventHandler",
    "Extension",
    "Feature",
    "Hook",
    "Host",
    "Middleware",
    "Reading",
    "RpcMethod",
    "SealedColumn",
]

Hook = Callable[[], Awaitable[None]]


class Admission(SessionAdmission, Gate, Protocol):
    """An admission check: every Engine.IO session at its handshake (`acquire`/`release`,
    refusing with the edge's `Refusal`), every Socket.IO request before its handler (`check`)
    and every connection's end (`forget`)."""


@dataclass(frozen=True, slots=True)
class Host:
    """What the core gives a feature to build with (all built, none started)."""

    config: Config
    node_id: str
    store: Store
    db: Database  # the same database as `store`, for a feature's own tables
    blobs: BlobStore  # where files are kept (DATA_DIR or an S3 bucket: gateway/blobs)
    broker: Broker
    chat: ChatService
    fanout: Fanout
    rpc: NodeRpc  # requests to other nodes and workers
    metrics: Metrics  # the registry: labelled counters a feature increments (declare gauges in `metrics`)
    tokens: VisitorTokens
    clock: Callable[[], float]
    worker: WorkerIdentity | None  # this process's place among its node's WORKERS


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    """What a feature adds to a gateway. Every field is optional; the order of features
    given to `build_gateway` is the order of their routes, middlewares (after the core's),
    listeners, checks and start hooks; stop hooks run in the reverse order."""

    # Socket.IO events of /visitor and /agent (a feature adds events; it cannot replace a core one)
    visitor_events: Mapping[str, EventHandler] = field(default_factory=_empty)
    agent_events: Mapping[str, EventHandler] = field(default_factory=_empty)
    rpc_methods: Mapping[str, RpcMethod] = field(default_factory=_empty)  # node RPC methods other nodes may call here
    routes: Sequence[web.AbstractRouteDef] = ()
    middlewares: Sequence[Middleware] = ()
    admission: Sequence[Admission] = ()
    message_listeners: Sequence[MessageListener] = ()  # after a new message is stored and published
    # before a message is stored: raise a GatewayError to refuse it, or return its initial delivery state
    send_checks: Sequence[SendCheck] = ()
    contact_listeners: Sequence[ContactListener] = ()  # after an agent corrected a contact
    attachments: Attachments | None = None  # at most one feature keeps message attachments
    metrics: Sequence[Reading] = ()
    db_gauges: Sequence[DbGauge] = ()  # cluster-wide gauges read from the database every 15 s
    on_start: Sequence[Hook] = ()  # after the core's background tasks started
    on_stop: Sequence[Hook] = ()  # before the core closes; a failing one is logged
    # objects published on the application (`app[key]`): for the feature's own handlers,
    # the CLI and tests
    app_state: Mapping[web.AppKey[Any], Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class CommandEnv:
    """What a feature's CLI subcommand runs with: the configuration and the opened
    (migrated) database, closed by the CLI afterwards."""

    config: Config
    store: StoreDatabase
    blobs: BlobStore  # the node's blob store (gateway/blobs), closed by the CLI afterwards


@dataclass(frozen=True, slots=True)
class Command:
    """A CLI subcommand: `path` ("channel",) under `python -m gateway`, or ("tenant", "end")
    under a core command's subcommands; `configure` adds its arguments (and sub-parsers);
    `run` returns the exit status. `seals`: it opens or seals data with the master key, so
    the CLI checks the key against the database first."""

    path: tuple[str, ...]
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[CommandEnv, argparse.Namespace], Awaitable[int]]
    seals: bool = False


class Feature(Protocol):
    """A feature: its name, its CLI subcommands, the columns where it keeps values sealed
    under the master key (checked at start, re-sealed by `master-key rotate`), and `build`,
    called once per gateway."""

    @property
    def name(self) -> str: ...

    @property
    def commands(self) -> Sequence[Command]: ...

    @property
    def sealed(self) -> Sequence[SealedColumn]: ...

    async def build(self, host: Host) -> Extension: ...
