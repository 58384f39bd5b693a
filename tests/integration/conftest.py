from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.edge_setup import Edge, edge_gateway
from tests.support.server import RunningGateway, make_config, run_gateway


@pytest.fixture
async def gateway(tmp_path) -> AsyncIterator[RunningGateway]:
    async with run_gateway(make_config(tmp_path, max_text_chars=1000)) as rg:
        yield rg


@pytest.fixture
async def edge(tmp_path) -> AsyncIterator[Edge]:
    """A gateway with every body-taking route reachable (tests/integration/edge_setup.py)."""
    async with edge_gateway(tmp_path) as e:
        yield e
