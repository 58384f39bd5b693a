"""`python -m gateway channel add|list` in a subprocess (embedded SQLite, generated master key)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.connectors.conftest import PG_DSN
from tests.support.procs import drop_schema


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("MASTER_KEY", "DATABASE_URL", "GATEWAY_CONFIG")}
    e.update({"DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, env=e,
                          timeout=60, check=False)


def test_channel_add_and_list(tmp_path: Path) -> None:
    t = json.loads(run(tmp_path, "tenant", "create", "--name", "Shop").stdout)["tenant_id"]
    added = run(tmp_path, "channel", "add", "--tenant", t, "--kind", "email", "--name", "Hỗ trợ",
                "--credentials-json", '{"password": "hunter2"}', "--settings-json", '{"address": "CS@Shop.vn"}')
    assert added.returncode == 0, added.stderr
    ch = json.loads(added.stdout)
    assert ch["address"] == "cs@shop.vn" and ch["kind"] == "email" and "hunter2" not in added.stdout
    assert (tmp_path / "data" / "master.key").stat().st_mode & 0o777 == 0o600
    listed = run(tmp_path, "channel", "list", "--tenant", t)
    assert [json.loads(line)["channel_id"] for line in listed.stdout.splitlines()] == [ch["channel_id"]]
    assert "hunter2" not in listed.stdout
    dup = run(tmp_path, "channel", "add", "--tenant", t, "--kind", "email", "--name", "x",
              "--settings-json", '{"address": "cs@shop.vn"}')
    assert dup.returncode == 2 and "already uses address" in dup.stderr
    bad = run(tmp_path, "channel", "add", "--tenant", t, "--kind", "email", "--name", "x", "--settings-json", "[1]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    nope = run(tmp_path, "channel", "list", "--tenant", "missing")
    assert nope.returncode == 2


@pytest.mark.postgres
async def test_shared_database_without_master_key_is_refused(tmp_path: Path) -> None:
    r = await asyncio.to_thread(run, tmp_path, "channel", "list", "--tenant", "x",
                                DATABASE_URL="sqlite:///" + str(tmp_path / "x.db"))
    assert r.returncode == 2 and "no tenant" in r.stderr  # a sqlite URL is still embedded
    schema = f"cx_{uuid.uuid4().hex[:12]}"
    try:
        r = await asyncio.to_thread(run, tmp_path, "channel", "list", "--tenant", "x", DATABASE_URL=PG_DSN,
                                    DATABASE_SCHEMA=schema)
        assert r.returncode == 2 and "MASTER_KEY is not set" in r.stderr
    finally:
        await drop_schema(schema, PG_DSN)
