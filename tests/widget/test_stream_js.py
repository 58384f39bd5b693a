"""The widget's JavaScript unit tests (node --test widget/test/)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.node


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
async def test_stream_js() -> None:
    proc = await asyncio.create_subprocess_exec(
        "node", "--test", "test/", cwd=ROOT / "widget",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
