"""`python -m gateway channel add|list|update|disable|enable|remove|rotate|test|audit` (declared by
the connectors feature, connectors/feature.py). Definitions are checked against their kind's
schema (connectors/schemas.py); a refusal exits 2 with a message naming the field. `test`
prints its report (connectors/probe.py) and exits 0 when every check passed, 1 when one failed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from connectors.admin_routes import audit_entry
from connectors.audit import SqlAuditRepository
from connectors.channels import ChannelError, ChannelRepository, ChannelStore
from connectors.manage import ChannelAdmin, ChannelNotFound, public
from connectors.probes import channel_probe
from connectors.settings import load_connector_settings
from gateway.config import Config
from gateway.core.domain import Channel
from gateway.extension import CommandEnv
from gateway.security.crypto import MasterKeyError, SecretBox, load_master_key
from gateway.store import NotFound

_KINDS = [c.value for c in Channel if c not in (Channel.WIDGET, Channel.CALL)]


def master_box(config: Config, master_key: str | None) -> SecretBox:
    """Raise `MasterKeyError` (clear message) when no key is available."""
    return SecretBox(load_master_key(master_key, data_dir=config.storage.data_dir, embedded=config.embedded))


def configure_channel_parser(c: argparse.ArgumentParser) -> None:
    csub = c.add_subparsers(dest="ccmd", required=True)
    ca = csub.add_parser("add", help="add an inbox; credentials are encrypted with MASTER_KEY")
    ca.add_argument("--tenant", required=True, help="tenant id")
    ca.add_argument("--kind", required=True, choices=_KINDS)
    ca.add_argument("--name", required=True)
    ca.add_argument("--credentials-json", default="{}", help="secret JSON object (encrypted at rest)")
    ca.add_argument("--settings-json", default="{}", help="public JSON object; 'address' routes inbound")
    ca.add_argument("--disabled", action="store_true")
    cl = csub.add_parser("list", help="list a tenant's inboxes (credentials are never printed)")
    cl.add_argument("--tenant", required=True)
    cau = csub.add_parser("audit", help="a tenant's inbox changes and tests, newest first (one JSON line each)")
    cau.add_argument("--tenant", required=True)
    cau.add_argument("--channel", help="only this inbox's (a removed one's too)")
    cau.add_argument("--limit", type=int, default=100, help="at most this many (1..500)")
    cu = csub.add_parser("update", help="rename an inbox or change its settings (merged; null removes a key)")
    cu.add_argument("--tenant", required=True)
    cu.add_argument("--channel", required=True, help="channel id")
    cu.add_argument("--name")
    cu.add_argument("--settings-json", default="{}", help="settings to change (JSON object)")
    cr = csub.add_parser("rotate", help="replace some of an inbox's credentials (the others are kept)")
    cr.add_argument("--tenant", required=True)
    cr.add_argument("--channel", required=True, help="channel id")
    cr.add_argument("--credentials-json", required=True, help="credentials to replace (JSON object)")
    for cmd, what in (("disable", "stop an inbox (no inbound, no sends)"), ("enable", "start it again"),
                      ("remove", "delete an inbox (its conversations stay)"),
                      ("test", "check the inbox's credentials against the platform (exit 1 when a check fails)")):
        cx = csub.add_parser(cmd, help=what)
        cx.add_argument("--tenant", required=True)
        cx.add_argument("--channel", required=True, help="channel id")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except ValueError as exc:
        raise ChannelError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(v, dict):
        raise ChannelError(f"{what} must be a JSON object")
    return v


async def run_channel_command(env: CommandEnv, args: argparse.Namespace) -> int:
    store, config = env.store, env.config
    try:
        box = master_box(config, load_connector_settings(os.environ).master_key)
    except MasterKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    channels: ChannelRepository = ChannelStore(store, box, time.time)
    try:
        await store.get_tenant(args.tenant)
    except NotFound:
        print(f"no tenant {args.tenant!r}", file=sys.stderr)
        return 2
    trail = SqlAuditRepository(store)
    admin = ChannelAdmin(channels, channel_probe(channels, store, "cli", time.time), trail)
    t = args.tenant
    try:
        if args.ccmd == "audit":
            for e in await trail.list(t, args.channel, args.limit):
                print(json.dumps(audit_entry(e), ensure_ascii=False))
            return 0
        if args.ccmd == "test":
            report = await admin.test(t, args.channel, actor="cli")
            print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
            return 0 if report.passed else 1
        if args.ccmd == "list":
            for ch in await channels.list(t):
                print(json.dumps(public(ch), ensure_ascii=False))
            return 0
        if args.ccmd == "add":
            ch = await admin.add(
                tenant_id=t, kind=Channel(args.kind), name=args.name,
                credentials=_json_object(args.credentials_json, "--credentials-json"),
                settings=_json_object(args.settings_json, "--settings-json"), enabled=not args.disabled, actor="cli",
            )
        elif args.ccmd == "update":
            ch = await admin.update(t, args.channel, actor="cli", name=args.name,
                                    settings=_json_object(args.settings_json, "--settings-json"))
        elif args.ccmd == "rotate":
            ch = await admin.rotate(t, args.channel, _json_object(args.credentials_json, "--credentials-json"),
                                    actor="cli")
        elif args.ccmd == "remove":
            ch = await admin.remove(t, args.channel, actor="cli")
        else:
            ch = await admin.set_enabled(t, args.channel, args.ccmd == "enable", actor="cli")
        print(json.dumps(public(ch), ensure_ascii=False, indent=2))
    except (ValueError, ChannelNotFound) as exc:  # ChannelError, SchemaError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
