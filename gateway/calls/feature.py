"""The calls feature: Socket.IO call events on both namespaces, the node RPC methods that run
an agent's call request where the call lives, recording playback routes, the sweep of calls
left by dead nodes, and the CLI's `recording` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from gateway.aio.periodic import Periodic
from gateway.calls.handlers import CallHandlers
from gateway.calls.http import CallRoutes
from gateway.calls.ice import restrict_host_addresses, rtc_configuration
from gateway.calls.service import CallService
from gateway.calls.settings import CallSettings, load_call_settings
from gateway.calls.store import CallStore
from gateway.calls.sweep import NodeSweeper
from gateway.extension import Command, CommandEnv, DbGauge, Extension, Hook, Host
from gateway.http.api import Api
from gateway.ops.metrics import Reading
from gateway.store.db import Database
from recording.blobs import BlobStore as RecordingBlobs
from recording.blobs import LocalBlobStore
from recording.catalogue import Catalogue
from recording.cli import configure_recording_parser, run_recording_command
from recording.keys import SEALED_IDENTITIES, KeyRing
from recording.masterkey import MasterKeyError, Sealer, load_master_key
from recording.segments import SegmentedBlobs, Spool
from recording.service import Recordings

CALLS_KEY = web.AppKey("calls", CallService)
DB_GAUGES = (
    DbGauge("izh_calls_active", "Calls ringing or in progress (whole cluster)",
            "SELECT COUNT(*) AS n FROM calls WHERE state IN ('ringing', 'active', 'answered')"),
    DbGauge("izh_recording_bytes", "Bytes of call recordings stored (whole cluster)",
            "SELECT COALESCE(SUM(size), 0) AS n FROM recordings"),
    DbGauge("izh_recordings", "Call recordings stored (whole cluster)", "SELECT COUNT(*) AS n FROM recordings"),
)
log = logging.getLogger(__name__)
SPOOL_INTERVAL = 5.0  # seconds between tries to upload spooled recording segments


def build_recordings(data_dir: str, master_key: str | None, db: Database, *, embedded: bool,
                     blobs: RecordingBlobs | None = None) -> Recordings:
    """`blobs`: where the recordings go (default: DATA_DIR/recordings)."""
    try:
        sealer: Sealer | None = Sealer(load_master_key(master_key, data_dir, embedded=embedded))
    except MasterKeyError as exc:  # calls still work, unrecorded; logged at every call
        log.error("call recording disabled: %s", exc)
        sealer = None
    return Recordings(KeyRing(db, sealer, time.time), Catalogue(db),
                      blobs or LocalBlobStore(Path(data_dir) / "recordings"), time.time, time.monotonic)


def recording_blobs(host: Host) -> tuple[RecordingBlobs, Spool | None]:
    """With BLOB_URL: segment objects in the node's bucket, with a bounded local spool
    (DATA_DIR/spool) for when it is unreachable; else files under DATA_DIR/recordings."""
    storage = host.config.storage
    if not storage.blobs.url:
        return LocalBlobStore(Path(storage.data_dir) / "recordings"), None
    spool = Spool(Path(storage.data_dir) / "spool", storage.blobs.spool_max_mb * 1024 * 1024)
    return SegmentedBlobs(host.blobs, asyncio.get_running_loop(), spool), spool


async def run_recording(env: CommandEnv, args: argparse.Namespace) -> int:
    return await run_recording_command(env.store, env.config, args, master_key=load_call_settings().master_key,
                                       switch=CallStore(env.store).set_recording_enabled, blobs=env.blobs)


class CallsFeature:
    name = "calls"
    commands = (Command(("recording",), "call recordings: export, identity, shred, switch",
                        configure_recording_parser, run_recording, seals=True),)
    sealed = (SEALED_IDENTITIES,)

    def __init__(self, settings: CallSettings | None = None) -> None:
        """`settings`: instead of the environment's (tests)."""
        self.settings = settings

    async def build(self, host: Host) -> Extension:
        settings = self.settings or load_call_settings()
        if settings.host_addresses:
            restrict_host_addresses(settings.host_addresses)
        cfg = host.config
        rec_blobs, spool = recording_blobs(host)
        recordings = build_recordings(cfg.storage.data_dir, settings.master_key, host.db,
                                      embedded=not cfg.storage.database_url, blobs=rec_blobs)
        service = CallService(store=CallStore(host.db), chat=host.chat, recordings=recordings, settings=settings,
                              rtc_config=rtc_configuration(settings.ice_servers), node_id=host.node_id,
                              clock=host.clock)
        handlers = CallHandlers(service, host.fanout, host.rpc)
        on_start: list[Hook] = []
        on_stop: list[Hook] = []
        metrics: list[Reading] = []
        if not cfg.storage.database_url:  # one node owns every call: finish what a crash left behind
            async def recover() -> None:
                await service.store.end_all_unfinished(host.clock())

            on_start.append(recover)
            on_stop.append(service.close)
        else:  # several nodes: each ends what dead ones left (gateway/calls/sweep.py)
            sweeper = NodeSweeper(service.store, host.chat, host.node_id, host.clock,
                                  heartbeat=settings.node_heartbeat, stale_after=settings.node_stale_after)
            on_start.append(sweeper.start)

            async def stop() -> None:
                await service.close()  # its calls end first, then the heartbeat goes
                await sweeper.stop()

            on_stop.append(stop)
            metrics.append(Reading("izh_calls_of_lost_nodes_ended_total",
                                   "Unfinished calls of nodes gone silent that this node ended",
                                   lambda: sweeper.ended))
        if spool is not None:
            blobs = host.blobs

            async def drain() -> None:
                await spool.drain(blobs)

            uploader = Periodic("recording-spool", drain, SPOOL_INTERVAL)

            async def start_uploader() -> None:
                uploader.start()

            on_start.append(start_uploader)
            on_stop.append(uploader.stop)
            on_stop.append(drain)  # a last try
            metrics.append(Reading("izh_blob_spool_bytes", "Recording bytes spooled locally, waiting for the "
                                   "object store", lambda: spool.bytes))
        return Extension(
            visitor_events=handlers.visitor,
            agent_events=handlers.agent,
            rpc_methods=handlers.rpc_methods,
            routes=CallRoutes(Api(host.chat, host.store, cfg), recordings).routes(),
            metrics=metrics,
            db_gauges=DB_GAUGES,
            on_start=on_start,
            on_stop=on_stop,
            app_state={CALLS_KEY: service},
        )
