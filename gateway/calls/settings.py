"""Call settings, read from the environment (and the GATEWAY_CONFIG file) like gateway.config.

CALL_RING_TIMEOUT   seconds an unanswered call rings before it ends as missed (30)
ICE_SERVERS         JSON list of RTCIceServer dicts ({"urls": …, "username": …, "credential": …})
                    given to browsers and used by the gateway's own peer connections ([])
CALL_HOST_ADDRESSES comma list of local IPs the gateway's ICE may use (default: all but
                    loopback, aioice's behaviour); tests and benches set 127.0.0.1
CALL_MAX_DURATION   hard cap on a call's length in seconds (14400)
CALL_NODE_HEARTBEAT seconds between a node's liveness writes (15); the unfinished calls of
                    a node silent for 4 of them are ended by the others as `node_lost`
CALL_RTP_SENDER     `direct` (forwarded Opus written straight to the leg's DTLS transport,
                    gateway/calls/rtpsend.py) or `aiortc` (through aiortc's sender task) (direct)
RECORDING_DEFAULT   record calls of tenants without an explicit switch (true)
MASTER_KEY          base64 of 32 bytes; wraps tenants' recording identities
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import ConfigError, read_env_file


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            d["username"] = self.username
        if self.credential is not None:
            d["credential"] = self.credential
        return d


@dataclass(frozen=True, slots=True)
class CallSettings:
    ring_timeout: float = 30.0
    ice_servers: tuple[IceServer, ...] = ()
    host_addresses: tuple[str, ...] = ()
    max_duration: float = 4 * 3600.0
    recording_default: bool = True
    master_key: str | None = None
    max_sdp_bytes: int = 64 * 1024
    node_heartbeat: float = 15.0
    direct_rtp: bool = True  # CALL_RTP_SENDER=direct

    @property
    def node_stale_after(self) -> float:
        """Silence after which a node counts as gone (its calls are ended by the others)."""
        return 4 * self.node_heartbeat


def parse_ice_servers(raw: str | None) -> tuple[IceServer, ...]:
    if not raw:
        return ()
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise ConfigError("ICE_SERVERS must be JSON") from exc
    if not isinstance(items, list):
        raise ConfigError("ICE_SERVERS must be a JSON list")
    out = []
    for it in items:
        if not isinstance(it, dict):
            raise ConfigError("ICE_SERVERS entries must be objects")
        urls = it.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(
                isinstance(u, str) and u.startswith(("stun:", "turn:", "turns:")) for u in urls):
            raise ConfigError("ICE_SERVERS: 'urls' must be stun:/turn:/turns: URLs")
        user, cred = it.get("username"), it.get("credential")
        if (user is not None and not isinstance(user, str)) or (cred is not None and not isinstance(cred, str)):
            raise ConfigError("ICE_SERVERS: username/credential must be strings")
        out.append(IceServer(tuple(urls), user, cred))
    return tuple(out)


def load_call_settings(env: Mapping[str, str] | None = None) -> CallSettings:
    base = dict(os.environ if env is None else env)
    merged: dict[str, str] = {}
    if base.get("GATEWAY_CONFIG"):
        merged.update(read_env_file(base["GATEWAY_CONFIG"]))
    merged.update(base)

    def num(key: str, default: float) -> float:
        v = merged.get(key)
        if not v:
            return default
        try:
            n = float(v)
        except ValueError as exc:
            raise ConfigError(f"{key} must be a number") from exc
        if n <= 0:
            raise ConfigError(f"{key} must be positive")
        return n

    rec = (merged.get("RECORDING_DEFAULT") or "true").lower()
    if rec not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ConfigError("RECORDING_DEFAULT must be a boolean")
    sender = (merged.get("CALL_RTP_SENDER") or "direct").lower()
    if sender not in ("direct", "aiortc"):
        raise ConfigError("CALL_RTP_SENDER must be 'direct' or 'aiortc'")
    hosts = tuple(h.strip() for h in (merged.get("CALL_HOST_ADDRESSES") or "").split(",") if h.strip())
    return CallSettings(
        ring_timeout=num("CALL_RING_TIMEOUT", 30.0),
        ice_servers=parse_ice_servers(merged.get("ICE_SERVERS")),
        host_addresses=hosts,
        max_duration=num("CALL_MAX_DURATION", 4 * 3600.0),
        recording_default=rec in ("1", "true", "yes", "on"),
        master_key=merged.get("MASTER_KEY") or None,
        node_heartbeat=num("CALL_NODE_HEARTBEAT", 15.0),
        direct_rtp=sender == "direct",
    )
