"""Operating a tenant's inboxes: add, update, disable, enable, remove and rotate, each
checked against its kind's schema (connectors/schemas.py) and audited; and test, which
checks the credentials against the platform (connectors/probe.py).

Used by the CLI (`python -m gateway channel …`, connectors/cli.py) and the admin REST API
(connectors/admin_routes.py). Every change is written to `connector_channels` only; the
nodes read the inboxes from there (Facebook and email on every webhook / mail / send, Zalo
on a webhook for an unknown OA and at most every reload interval, YouTube and IMAP pollers
on their next refresh, at most 60 s later), so a change takes effect on every node without
a restart.

Audit: each change (and each test) is logged on the ``connectors.audit`` logger as one line
``channel.<action> tenant=… channel=… kind=… actor=… fields=…`` and, when the admin has an
`AuditRepository`, stored as an `AuditEntry` (connectors/audit.py; `channel audit`, `GET
/api/v1/channels/audit`); the credentials' values never appear (only the names of the keys
that changed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from connectors.audit import AuditEntry, AuditRepository
from connectors.channels import ChannelConfig, ChannelError, ChannelRepository
from connectors.probe import ChannelProbe, ProbeReport
from connectors.schemas import SCHEMAS, check
from gateway.core.domain import Channel

audit_log = logging.getLogger("connectors.audit")


class ChannelNotFound(LookupError):
    """No inbox with this id in this tenant."""


def merged(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `changes` applied: a key set to null is removed."""
    out = dict(current)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def public(ch: ChannelConfig) -> dict[str, Any]:
    """The inbox as the CLI prints it and the API returns it (never the credentials)."""
    return {"channel_id": ch.id, "tenant_id": ch.tenant_id, "kind": ch.kind.value, "name": ch.name,
            "address": ch.address, "enabled": ch.enabled, "settings": ch.settings, "created_at": ch.created_at}


class ChannelAdmin:
    """`actor` of each call names who made the change in the audit line (``cli``,
    ``agent:<id>``)."""

    def __init__(self, channels: ChannelRepository, probe: ChannelProbe | None = None,
                 audit: AuditRepository | None = None, clock: Callable[[], float] = time.time) -> None:
        self._channels = channels
        self._probe = probe
        self._audit_trail = audit
        self._clock = clock

    async def test(self, tenant_id: str, channel_id: str, *, actor: str) -> ProbeReport:
        """Check the inbox's credentials against its platform (a disabled inbox too); the
        audit line lists each check as ``<check>:ok|failed``."""
        if self._probe is None:
            raise ChannelError("channel test is not available here")
        ch = await self._get(tenant_id, channel_id)
        report = await self._probe.test(ch)
        await self._audit("test", ch, actor, [f"{c.check}:{'ok' if c.ok else 'failed'}" for c in report.checks])
        return report

    async def _get(self, tenant_id: str, channel_id: str) -> ChannelConfig:
        ch = await self._channels.get(tenant_id, channel_id)
        if ch is None:
            raise ChannelNotFound(f"no channel {channel_id!r} in tenant {tenant_id!r}")
        return ch

    async def add(self, *, tenant_id: str, kind: Channel, name: str, settings: dict[str, Any],
                  credentials: dict[str, Any], enabled: bool, actor: str) -> ChannelConfig:
        """Raises SchemaError or ChannelError (both ValueError) for a refused definition."""
        if kind not in SCHEMAS:
            raise ChannelError(f"{Channel(kind).value} is not a connector channel")
        check(kind, settings, credentials)
        ch = await self._channels.add(tenant_id=tenant_id, kind=kind, name=name, credentials=credentials,
                                      settings=settings, enabled=enabled)
        await self._audit("add", ch, actor, sorted(settings) + [f"credentials.{k}" for k in sorted(credentials)])
        return ch

    async def update(self, tenant_id: str, channel_id: str, *, actor: str, name: str | None = None,
                     settings: Mapping[str, Any] | None = None) -> ChannelConfig:
        """Merge `settings` changes (null removes a key) and rename; the result is checked
        against the schema with the current credentials."""
        ch = await self._get(tenant_id, channel_id)
        new_settings = merged(ch.settings, settings or {})
        check(ch.kind, new_settings, await self._channels.credentials(ch))
        out = await self._channels.redefine(tenant_id, channel_id, name=ch.name if name is None else name,
                                            settings=new_settings)
        if out is None:
            raise ChannelNotFound(f"no channel {channel_id!r} in tenant {tenant_id!r}")
        await self._audit("update", out, actor, (["name"] if name is not None else []) + sorted(settings or {}))
        return out

    async def rotate(self, tenant_id: str, channel_id: str, changes: Mapping[str, Any], *,
                     actor: str) -> ChannelConfig:
        """Replace some credentials (a new secret or token); the merged credentials are
        checked against the schema first. Keys not named keep their value."""
        ch = await self._get(tenant_id, channel_id)
        if not changes:
            raise ChannelError("no credentials to rotate")
        if any(v is None for v in changes.values()):
            raise ChannelError("rotate sets credentials; it cannot remove one (null given)")
        check(ch.kind, ch.settings, merged(await self._channels.credentials(ch), changes))
        try:
            await self._channels.update_credentials(tenant_id, channel_id, dict(changes))
        except LookupError:
            raise ChannelNotFound(f"no channel {channel_id!r} in tenant {tenant_id!r}") from None
        await self._audit("rotate", ch, actor, [f"credentials.{k}" for k in sorted(changes)])
        return ch

    async def set_enabled(self, tenant_id: str, channel_id: str, enabled: bool, *, actor: str) -> ChannelConfig:
        await self._get(tenant_id, channel_id)
        await self._channels.set_enabled(tenant_id, channel_id, enabled)
        ch = await self._get(tenant_id, channel_id)
        await self._audit("enable" if enabled else "disable", ch, actor, ["enabled"])
        return ch

    async def remove(self, tenant_id: str, channel_id: str, *, actor: str) -> ChannelConfig:
        ch = await self._get(tenant_id, channel_id)
        if not await self._channels.remove(tenant_id, channel_id):
            raise ChannelNotFound(f"no channel {channel_id!r} in tenant {tenant_id!r}")
        await self._audit("remove", ch, actor, [])
        return ch

    async def _audit(self, action: str, ch: ChannelConfig, actor: str, fields: list[str]) -> None:
        if self._audit_trail is not None:
            await self._audit_trail.record(AuditEntry(ch.tenant_id, ch.id, ch.kind.value, action, actor,
                                                      tuple(fields), self._clock()))
        audit_log.info("channel.%s tenant=%s channel=%s kind=%s actor=%s fields=%s", action, ch.tenant_id, ch.id,
                       ch.kind.value, actor, ",".join(fields) or "-")
