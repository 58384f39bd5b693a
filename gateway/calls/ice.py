"""ICE configuration for the gateway's peer connections."""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from gateway.calls.settings import IceServer


def rtc_configuration(servers: Sequence[IceServer]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in servers])


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates only on `addresses` (process-wide; aioice has no
    per-connection option). aioice normally skips 127.0.0.1; tests and benches on a shared
    machine pass ["127.0.0.1"] so media stays on loopback."""
    fixed = list(addresses)

    def _hosts(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = _hosts
