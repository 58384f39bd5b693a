"""`python -m gateway [serve|migrate|tenant|agent|master-key|blobs] …`"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from gateway.admin.masterkey import rotate_command, verify_master_key
from gateway.admin.tenants import create_agent, create_tenant
from gateway.app import build_gateway, default_node_id
from gateway.blobs.factory import open_blobs
from gateway.blobs.local import LocalBlobs
from gateway.blobs.migrate import migrate
from gateway.cluster.handoff import HandoffReceiver, message_size
from gateway.cluster.supervisor import Supervisor, WorkerIdentity, own_command, worker_identity, worker_node_id
from gateway.composition import default_features
from gateway.config import Config, ConfigError, load_config
from gateway.core.domain import AgentRole
from gateway.edge.listen import EdgeSite
from gateway.extension import CommandEnv, Feature, SealedColumn
from gateway.ops.eventloop import EventLoopUnavailable, loop_factory, running_loop_name
from gateway.ops.eventloop import run as run_on_loop
from gateway.ops.gctune import GcTuning
from gateway.ops.logs import setup_logging
from gateway.ops.stallwatch import StallWatch
from gateway.realtime.drain import DRAINER_KEY
from gateway.store import NotFound
from gateway.store.factory import open_store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

log = logging.getLogger("gateway")


def _parser(features: Sequence[Feature]) -> argparse.ArgumentParser:
    """The core's commands, then the features' (`Feature.commands`), each parser marked with
    its command (`feature_command`) for `_admin` to run."""
    p = argparse.ArgumentParser(prog="python -m gateway", description="IZIHelp realtime gateway")
    sub = p.add_subparsers(dest="cmd")
    serve = sub.add_parser("serve", help="run the gateway (default)")
    serve.add_argument("--demo", action="store_true", help="create a demo tenant and agent if none exists")
    sub.add_parser("migrate", help="apply database migrations and exit")
    t = sub.add_parser("tenant", help="tenant administration")
    tsub = t.add_subparsers(dest="tcmd", required=True)
    tc = tsub.add_parser("create", help="create a tenant; prints its widget key and an admin token")
    tc.add_argument("--name", required=True)
    tc.add_argument("--admin-name", default="Admin")
    tc.add_argument("--require-identity", action="store_true")
    tsub.add_parser("list")
    a = sub.add_parser("agent", help="agent administration")
    asub = a.add_subparsers(dest="acmd", required=True)
    ac = asub.add_parser("create", help="create an agent; prints its token (shown once)")
    ac.add_argument("--tenant", required=True, help="tenant id")
    ac.add_argument("--name", required=True)
    ac.add_argument("--role", choices=[r.value for r in AgentRole], default="agent")
    ac.add_argument("--capacity", type=int, default=5)
    mk = sub.add_parser("master-key", help="the master key (MASTER_KEY)")
    mksub = mk.add_subparsers(dest="mkcmd", required=True)
    mksub.add_parser("rotate", help="re-seal everything under NEW_MASTER_KEY (stop every node first)")
    bl = sub.add_parser("blobs", help="the blob store (BLOB_URL)")
    blsub = bl.add_subparsers(dest="blcmd", required=True)
    blsub.add_parser("migrate", help="copy the files under DATA_DIR into the BLOB_URL bucket (checksum-verified, "
                                     "idempotent, resumable); prints counts")
    groups: dict[tuple[str, ...], Any] = {(): sub, ("tenant",): tsub}
    for feature in features:
        for command in feature.commands:
            parent = groups.get(command.path[:-1])
            if parent is None:
                raise ValueError(f"feature {feature.name}: no command group {' '.join(command.path[:-1])!r}")
            cp = parent.add_parser(command.path[-1], help=command.help)
            command.configure(cp)
            cp.set_defaults(feature_command=command)
    return p


async def _with_store(config: Config) -> SqliteStore | PostgresStore:
    if not config.storage.database_url:
        os.makedirs(config.storage.data_dir, exist_ok=True)
    return await open_store(config.storage.database_url, sqlite_path=config.sqlite_path,
                            schema=config.storage.database_schema, limits=config.store_limits)


def _sealed(features: Sequence[Feature]) -> list[SealedColumn]:
    return [column for feature in features for column in feature.sealed]


async def _admin(config: Config, args: argparse.Namespace, features: Sequence[Feature]) -> int:
    store = await _with_store(config)
    try:
        if args.cmd == "master-key":
            print(json.dumps(await rotate_command(store, os.environ, config.storage.data_dir,
                                                  embedded=config.embedded, sealed=_sealed(features)), indent=2))
            return 0
        command = getattr(args, "feature_command", None)
        if command is not None:
            if command.seals:  # it seals or opens with the master key
                await verify_master_key(store, os.environ, config.storage.data_dir, embedded=config.embedded,
                                        sealed=_sealed(features))
            blobs = open_blobs(config.storage.blobs, config.storage.data_dir)
            try:
                status: int = await command.run(CommandEnv(config, store, blobs), args)
            finally:
                await blobs.close()
            return status
        if args.cmd == "migrate":
            print(json.dumps({"migrated": True}))
        elif args.cmd == "tenant" and args.tcmd == "create":
            nt = await create_tenant(store, args.name, admin_name=args.admin_name,
                                     require_identity=args.require_identity, now=time.time())
            print(json.dumps({"tenant_id": nt.tenant.id, "widget_key": nt.tenant.widget_key,
                              "identity_secret": nt.tenant.identity_secret, "admin_agent_id": nt.admin.id,
                              "admin_token": nt.admin_token}, indent=2))
        elif args.cmd == "tenant" and args.tcmd == "list":
            for t in await store.list_tenants():
                print(json.dumps({"tenant_id": t.id, "name": t.name, "widget_key": t.widget_key,
                                  "status": t.status.value}))
        elif args.cmd == "agent" and args.acmd == "create":
            try:
                await store.get_tenant(args.tenant)
            except NotFound:
                print(f"no tenant {args.tenant!r}", file=sys.stderr)
                return 2
            na = await create_agent(store, args.tenant, args.name, role=AgentRole(args.role),
                                    capacity=args.capacity, now=time.time())
            print(json.dumps({"agent_id": na.agent.id, "token": na.token}, indent=2))
        return 0
    finally:
        await store.close()


async def _supervise(config: Config, demo: bool, features: Sequence[Feature]) -> int:
    """WORKERS > 1: migrate (and create the demo) once, then run the workers."""
    store = await _with_store(config)
    try:  # checked once here too: a wrong key stops the supervisor, not each worker in a loop
        await verify_master_key(store, os.environ, config.storage.data_dir, embedded=config.embedded,
                                sealed=_sealed(features))
        if demo:
            from gateway.admin.demo import ensure_demo

            print(await ensure_demo(store, config, now=time.time()), flush=True)
    finally:
        await store.close()
    env = {**os.environ, "NODE_ID": config.server.node_id}
    sup = Supervisor(config.server.workers, own_command(drop=("--demo",)), env,
                     stop_timeout=config.server.drain_timeout + 5)
    print(f"IZIHelp gateway {config.server.node_id}: {config.server.workers} workers on "
          f"http://{config.server.host}:{config.server.port}", flush=True)
    return await sup.run()


async def _serve(config: Config, demo: bool, features: Sequence[Feature],
                 worker: WorkerIdentity | None = None) -> None:
    gw = await build_gateway(config, features, worker=worker)
    if demo:
        from gateway.admin.demo import ensure_demo

        info = await ensure_demo(gw.store, config, now=time.time())
        print(info, flush=True)
    ssl_ctx = None
    if config.server.tls_cert and config.server.tls_key:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(config.server.tls_cert, config.server.tls_key)
    # SIGTERM/SIGINT drain first (gateway/realtime/drain.py), then the runner stops within the rest of DRAIN_TIMEOUT
    timeout = config.server.drain_timeout
    runner = web.AppRunner(gw.app, access_log=None, handle_signals=False, shutdown_timeout=max(0.5, timeout * 0.2))
    await runner.setup()
    site = EdgeSite(runner, config.server.host, config.server.port, ssl_context=ssl_ctx,
                    reuse_port=worker is not None)
    receiver = None
    if worker is not None:
        receiver = adopting = HandoffReceiver(worker.path, site.protocol, message_size(config.limits.max_event_bytes))
        adopting.start()
        gw.metrics.counter_fn("izh_handoffs_adopted_total", "Connections adopted from sibling workers",
                              lambda: adopting.adopted)
    # everything imported and built: keep it out of every garbage collection from now on
    gc_tuning = GcTuning(config.server.gc_gen0_threshold, config.server.gc_freeze)
    gc_tuning.export(gw.metrics)
    gc_tuning.apply()
    await site.start()
    stall_watch = None
    if config.server.loop_stall_ms:
        stall_watch = watch = StallWatch(config.server.loop_stall_ms / 1000)
        watch.start()
        gw.metrics.counter_fn("izh_loop_stalls_total", "Event-loop stalls longer than LOOP_STALL_MS (stack logged)",
                              lambda: watch.stalls)
        gw.metrics.gauge("izh_loop_stall_max_seconds", "The longest event-loop stall so far", lambda: watch.longest)
    scheme = "https" if ssl_ctx else "http"
    backend = "PostgreSQL" if config.storage.database_url else f"SQLite at {config.sqlite_path}"
    broker = "Redis" if config.storage.redis_url else "in-process broker"
    print(f"IZIHelp gateway {gw.node_id} listening on {scheme}://{config.server.host}:{config.server.port} "
          f"({backend}, {broker}, {running_loop_name()} event loop)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("signal received: draining (DRAIN_TIMEOUT=%.1fs)", timeout)
        await gw.app[DRAINER_KEY].drain(timeout * 0.7)
    finally:
        if stall_watch is not None:
            stall_watch.stop()
        if receiver is not None:
            receiver.close()
        await site.stop()
        await runner.cleanup()
        gc_tuning.remove()
        log.info("stopped")


async def _migrate_blobs(config: Config) -> int:
    """`blobs migrate`: exit 0 when every file is in the bucket, 1 when some failed, 2 without BLOB_URL."""
    if not config.storage.blobs.url:
        print("blobs migrate: set BLOB_URL (and the S3 settings) to the bucket to copy DATA_DIR's files into",
              file=sys.stderr)
        return 2
    source = LocalBlobs(config.storage.data_dir)
    target = open_blobs(config.storage.blobs, config.storage.data_dir)
    try:
        report = await migrate(source, target)
    finally:
        await target.close()
    print(json.dumps(report.to_dict()))
    return 1 if report.failed else 0


def main(argv: Sequence[str] | None = None, features: Sequence[Feature] | None = None) -> int:
    """`features`: those the node runs and administers (default: `default_features()`)."""
    features = default_features() if features is None else features
    args = _parser(features).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if not config.server.node_id:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, node_id=default_node_id()))
    serving = args.cmd in (None, "serve")
    worker = worker_identity(os.environ, config.server.workers) if serving and config.server.workers > 1 else None
    if worker is not None:
        node_id = worker_node_id(config.server.node_id, worker.index)
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, node_id=node_id))
    setup_logging(config.privacy.log_format, config.server.node_id)
    try:
        if args.cmd == "blobs":
            return asyncio.run(_migrate_blobs(config))
        if not serving:
            return asyncio.run(_admin(config, args, features))
        try:
            _, new_loop = loop_factory(config.server.event_loop)
        except EventLoopUnavailable as exc:
            raise ConfigError(str(exc)) from None
        with contextlib.suppress(KeyboardInterrupt):
            if config.server.workers > 1 and worker is None:
                return run_on_loop(_supervise(config, getattr(args, "demo", False), features), new_loop)
            run_on_loop(_serve(config, getattr(args, "demo", False), features, worker), new_loop)
    except ConfigError as exc:  # found at start: e.g. a MASTER_KEY that does not open the data
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return 0
