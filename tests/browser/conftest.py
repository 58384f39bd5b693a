"""Browser tests: a real gateway in-process (per module) and headless Debian chromium."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.admin.demo import ensure_demo, load_demo
from tests.support.server import RunningGateway, make_config, run_gateway

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Demo:
    rg: RunningGateway
    url: str
    widget_key: str
    agent_token: str
    tenant_id: str


def ensure_built() -> None:
    """Build widget/dist if needed (scripts/test.sh already did; this covers `pytest tests/browser`)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "build-widget.sh")], check=True)


@pytest.fixture(scope="module")
def built() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    ensure_built()


async def start_demo(tmp: Path, **limits: Any) -> AsyncIterator[Demo]:
    config = make_config(tmp, **limits)
    async with run_gateway(config) as rg:
        await ensure_demo(rg.gw.store, config, now=time.time())
        info = load_demo(tmp)
        assert info is not None
        yield Demo(rg, rg.url, info["widget_key"], info["agent_token"], info["tenant_id"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(built: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()
