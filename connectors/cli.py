"""`python -m gateway channel add|list` (declared by the connectors feature, connectors/feature.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from connectors.channels import ChannelConfig, ChannelError, ChannelRepository, ChannelStore
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
    try:
        if args.ccmd == "add":
            ch = await channels.add(
                tenant_id=args.tenant, kind=Channel(args.kind), name=args.name,
                credentials=_json_object(args.credentials_json, "--credentials-json"),
                settings=_json_object(args.settings_json, "--settings-json"), enabled=not args.disabled,
            )
            print(json.dumps(_public(ch), ensure_ascii=False, indent=2))
        else:
            for ch in await channels.list(args.tenant):
                print(json.dumps(_public(ch), ensure_ascii=False))
    except ChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _public(ch: ChannelConfig) -> dict[str, Any]:
    return {"channel_id": ch.id, "tenant_id": ch.tenant_id, "kind": ch.kind.value, "name": ch.name,
            "address": ch.address, "enabled": ch.enabled, "settings": ch.settings}
