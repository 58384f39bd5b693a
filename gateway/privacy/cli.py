"""CLI: `retention run [--dry-run]` and `tenant end --tenant T [--at ISO8601|UNIX]` (declared by
the privacy feature, gateway/privacy/feature.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

from gateway.extension import CommandEnv
from gateway.privacy.retention import Retention
from gateway.privacy.store import privacy_store


def configure_retention(r: argparse.ArgumentParser) -> None:
    rsub = r.add_subparsers(dest="rcmd", required=True)
    run = rsub.add_parser("run", help="delete tenants ended RETENTION_YEARS ago and expired messages")
    run.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")


def configure_tenant_end(e: argparse.ArgumentParser) -> None:
    e.add_argument("--tenant", required=True, help="tenant id")
    e.add_argument("--at", default=None, help="when it ended: ISO 8601 or UNIX seconds (default: now)")


def parse_time(value: str | None) -> float:
    if value is None:
        return time.time()
    try:
        return float(value)
    except ValueError:
        pass
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt.timestamp()


async def run_tenant_end(env: CommandEnv, args: argparse.Namespace) -> int:
    store = privacy_store(env.store, sqlite=env.config.embedded)
    try:
        at = parse_time(args.at)
    except ValueError:
        print(f"--at: not a time: {args.at!r}", file=sys.stderr)
        return 2
    if not await store.end_tenant(args.tenant, at):
        print(f"no tenant {args.tenant!r}", file=sys.stderr)
        return 2
    await store.audit(args.tenant, "cli", "tenant.ended", args.tenant, {"ended_at": at})
    print(json.dumps({"tenant_id": args.tenant, "ended_at": at}))
    return 0


async def run_retention(env: CommandEnv, args: argparse.Namespace) -> int:
    config = env.config
    retention = Retention(privacy_store(env.store, sqlite=config.embedded), env.blobs,
                          config.privacy.retention_years)
    report = await retention.run(dry_run=args.dry_run, actor="cli")
    print(json.dumps(report.to_dict(), indent=2))
    return 0
