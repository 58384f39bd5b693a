"""Connector settings from the environment (documented in docs/operations.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ConfigError, read_env_file


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    autostart: bool = True  # OUTBOX_AUTOSTART=0: the worker waits for `Outbox.start()` (tests)
    poll_interval: float = 2.0
    lease: float = 120.0  # a claimed row whose sender died is due again after this
    base_delay: float = 5.0
    max_delay: float = 900.0
    max_attempts: int = 10
    max_age: float = 24 * 3600.0
    batch: int = 20


@dataclass(frozen=True, slots=True)
class EmailSettings:
    smtp_host: str = "127.0.0.1"
    smtp_port: int | None = None  # None: no SMTP listener; 0: an ephemeral port (tests)
    max_message_bytes: int = 25 * 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    send_timeout: float = 30.0
    imap_interval: float = 60.0  # s between polls of the inboxes with IMAP settings; 0: none
    imap_idle: float = 300.0  # s of each IMAP IDLE on the inboxes this node polls; 0: no IDLE


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    master_key: str | None = None
    outbox: OutboxSettings = OutboxSettings()
    email: EmailSettings = EmailSettings()


def _num(env: Mapping[str, str], key: str, default: float) -> float:
    v = env.get(key)
    if v in (None, ""):
        return default
    try:
        return float(v)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {v!r}") from None


def _imap_interval(env: Mapping[str, str]) -> float:
    v = _num(env, "EMAIL_IMAP_INTERVAL", 60.0)
    if v != 0 and not 1 <= v <= 86400:
        raise ConfigError("EMAIL_IMAP_INTERVAL must be 0 (no polling) or 1..86400 seconds")
    return v


def _imap_idle(env: Mapping[str, str]) -> float:
    v = _num(env, "EMAIL_IMAP_IDLE", 300.0)
    if v != 0 and not 10 <= v <= 1740:
        raise ConfigError("EMAIL_IMAP_IDLE must be 0 (no IDLE) or 10..1740 seconds (servers end an IDLE at 30 min)")
    return v


def load_connector_settings(env: Mapping[str, str]) -> ConnectorSettings:
    merged: dict[str, str] = {}
    if env.get("GATEWAY_CONFIG"):
        merged.update(read_env_file(env["GATEWAY_CONFIG"]))
    merged.update(env)
    port_s = merged.get("SMTP_PORT") or None
    port = int(_num(merged, "SMTP_PORT", 0)) if port_s is not None else None
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError("SMTP_PORT must be between 0 and 65535")
    return ConnectorSettings(
        master_key=merged.get("MASTER_KEY") or None,
        outbox=OutboxSettings(
            autostart=(merged.get("OUTBOX_AUTOSTART", "1").lower() not in ("0", "false", "no", "off")),
            poll_interval=_num(merged, "OUTBOX_POLL_INTERVAL", 2.0),
            lease=_num(merged, "OUTBOX_LEASE", 120.0),
            base_delay=_num(merged, "OUTBOX_BASE_DELAY", 5.0),
            max_delay=_num(merged, "OUTBOX_MAX_DELAY", 900.0),
            max_attempts=int(_num(merged, "OUTBOX_MAX_ATTEMPTS", 10)),
            max_age=_num(merged, "OUTBOX_MAX_AGE", 24 * 3600.0),
        ),
        email=EmailSettings(
            smtp_host=merged.get("SMTP_HOST") or "127.0.0.1",
            smtp_port=port,
            max_message_bytes=int(_num(merged, "SMTP_MAX_MESSAGE_BYTES", 25 * 1024 * 1024)),
            max_attachment_bytes=int(_num(merged, "EMAIL_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)),
            imap_interval=_imap_interval(merged),
            imap_idle=_imap_idle(merged),
        ),
    )
