"""IZICall: WebRTC calls through the gateway (aiortc, Opus passthrough), recorded to
age-encrypted storage. `install(gw)` wires everything; see docs/protocol.md "Calls"."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.calls.handlers import CallHandlers
from gateway.calls.http import CallRoutes
from gateway.calls.ice import restrict_host_addresses, rtc_configuration
from gateway.calls.service import CallService
from gateway.calls.settings import CallSettings, load_call_settings
from gateway.calls.store import CallStore
from gateway.calls.sweep import NodeSweeper
from gateway.http.api import Api
from gateway.store.db import Database
from recording.blobs import LocalBlobStore
from recording.catalogue import Catalogue
from recording.keys import KeyRing
from recording.masterkey import MasterKeyError, Sealer, load_master_key
from recording.service import Recordings

if TYPE_CHECKING:
    from gateway.app import Gateway


CALLS_KEY = web.AppKey("calls", CallService)
log = logging.getLogger(__name__)


def build_recordings(data_dir: str, master_key: str | None, db: Database, *, embedded: bool) -> Recordings:
    try:
        sealer: Sealer | None = Sealer(load_master_key(master_key, data_dir, embedded=embedded))
    except MasterKeyError as exc:  # calls still work, unrecorded; logged at every call
        log.error("call recording disabled: %s", exc)
        sealer = None
    return Recordings(KeyRing(db, sealer, time.time), Catalogue(db),
                      LocalBlobStore(Path(data_dir) / "recordings"), time.time, time.monotonic)


async def install(gw: Gateway, settings: CallSettings | None = None) -> CallService:
    settings = settings or load_call_settings()
    if settings.host_addresses:
        restrict_host_addresses(settings.host_addresses)
    cfg = gw.config
    recordings = build_recordings(cfg.storage.data_dir, settings.master_key, gw.db,
                                  embedded=not cfg.storage.database_url)
    service = CallService(store=CallStore(gw.db), chat=gw.chat, recordings=recordings, settings=settings,
                          rtc_config=rtc_configuration(settings.ice_servers), node_id=gw.node_id, clock=gw.clock)
    handlers = CallHandlers(service, gw.fanout, gw.rpc)
    gw.handlers.visitor.update(handlers.visitor)
    gw.handlers.agent.update(handlers.agent)
    gw.app.add_routes(CallRoutes(Api(gw.chat, gw.store, cfg), recordings).routes())
    if not cfg.storage.database_url:  # one node owns every call: finish what a crash left behind
        async def recover() -> None:
            await service.store.end_all_unfinished(gw.clock())

        gw.on_start.append(recover)
        gw.on_stop.append(service.close)
    else:  # several nodes: each ends what dead ones left (gateway/calls/sweep.py)
        sweeper = NodeSweeper(service.store, gw.chat, gw.node_id, gw.clock,
                              heartbeat=settings.node_heartbeat, stale_after=settings.node_stale_after)
        gw.on_start.append(sweeper.start)

        async def stop() -> None:
            await service.close()  # its calls end first, then the heartbeat goes
            await sweeper.stop()

        gw.on_stop.append(stop)
        gw.metrics.counter_fn("izh_calls_of_lost_nodes_ended_total",
                              "Unfinished calls of nodes gone silent that this node ended", lambda: sweeper.ended)
    gw.app[CALLS_KEY] = service
    return service
