from __future__ import annotations

from collections.abc import AsyncIterator

import aioice.ice
import pytest

from tests.support.server import RunningGateway, make_config, run_gateway


@pytest.fixture
def loopback_ice(monkeypatch):
    """Media on loopback only: the gateway's install() narrows aioice to 127.0.0.1 (restored after)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    monkeypatch.setenv("CALL_HOST_ADDRESSES", "127.0.0.1")
    monkeypatch.delenv("MASTER_KEY", raising=False)
    monkeypatch.delenv("ICE_SERVERS", raising=False)


@pytest.fixture
async def call_gateway(request, tmp_path, loopback_ice, monkeypatch) -> AsyncIterator[RunningGateway]:
    """A gateway whose calls ring for 10 s; `indirect` parametrisation picks CALL_RTP_SENDER."""
    monkeypatch.setenv("CALL_RING_TIMEOUT", "10")
    monkeypatch.setenv("CALL_RTP_SENDER", getattr(request, "param", "direct"))
    async with run_gateway(make_config(tmp_path)) as rg:
        yield rg
