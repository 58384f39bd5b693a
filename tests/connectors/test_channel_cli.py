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


def test_channel_add_refuses_what_the_schema_refuses(tmp_path: Path) -> None:
    t = json.loads(run(tmp_path, "tenant", "create", "--name", "Shop").stdout)["tenant_id"]
    for kind, settings, creds, field in [
        ("facebook", '{"adress": "555"}', '{"page_acess_token": "t"}', "settings.adress"),
        ("zalo", '{"address": "1"}', '{"oa_secret_key": "k", "app_secret_key": "a", "refresh_token": "r"}',
         "settings.app_id"),
        ("email", '{"address": "not-an-address", "smtp_port": "abc"}', "{}", "settings.address"),
        ("email", '{"address": "cs@shop.vn", "smtp_port": "abc"}', "{}", "settings.smtp_port"),
        ("youtube", "{}", "{}", "settings.address"),
    ]:
        r = run(tmp_path, "channel", "add", "--tenant", t, "--kind", kind, "--name", "x",
                "--settings-json", settings, "--credentials-json", creds)
        assert r.returncode == 2 and f"error: {field}:" in r.stderr, (kind, r.stderr)
    assert run(tmp_path, "channel", "list", "--tenant", t).stdout == ""


def test_channel_update_rotate_disable_enable_remove(tmp_path: Path) -> None:
    t = json.loads(run(tmp_path, "tenant", "create", "--name", "Shop").stdout)["tenant_id"]
    ch = json.loads(run(tmp_path, "channel", "add", "--tenant", t, "--kind", "email", "--name", "Support",
                        "--credentials-json", '{"password": "old"}',
                        "--settings-json", '{"address": "cs@shop.vn", "smtp_port": 25}').stdout)
    cid = ch["channel_id"]
    up = run(tmp_path, "channel", "update", "--tenant", t, "--channel", cid, "--name", "Help",
             "--settings-json", '{"address": "help@shop.vn", "smtp_port": null, "from_name": "Shop"}')
    assert up.returncode == 0, up.stderr
    got = json.loads(up.stdout)
    assert got["name"] == "Help" and got["address"] == "help@shop.vn"
    assert got["settings"] == {"address": "help@shop.vn", "from_name": "Shop"}
    bad = run(tmp_path, "channel", "update", "--tenant", t, "--channel", cid, "--settings-json", '{"smtp_port": "x"}')
    assert bad.returncode == 2 and "settings.smtp_port" in bad.stderr
    rot = run(tmp_path, "channel", "rotate", "--tenant", t, "--channel", cid,
              "--credentials-json", '{"password": "new"}')
    assert rot.returncode == 0 and "new" not in rot.stdout and "channel.rotate" in rot.stderr, rot.stderr
    bad = run(tmp_path, "channel", "rotate", "--tenant", t, "--channel", cid, "--credentials-json", '{"pass": "x"}')
    assert bad.returncode == 2 and "credentials.pass" in bad.stderr
    off = run(tmp_path, "channel", "disable", "--tenant", t, "--channel", cid)
    assert off.returncode == 0 and json.loads(off.stdout)["enabled"] is False
    on = run(tmp_path, "channel", "enable", "--tenant", t, "--channel", cid)
    assert on.returncode == 0 and json.loads(on.stdout)["enabled"] is True
    other = json.loads(run(tmp_path, "tenant", "create", "--name", "Other").stdout)["tenant_id"]
    assert run(tmp_path, "channel", "remove", "--tenant", other, "--channel", cid).returncode == 2  # tenant-scoped
    gone = run(tmp_path, "channel", "remove", "--tenant", t, "--channel", cid)
    assert gone.returncode == 0 and "channel.remove" in gone.stderr
    assert run(tmp_path, "channel", "list", "--tenant", t).stdout == ""
    again = run(tmp_path, "channel", "add", "--tenant", t, "--kind", "email", "--name", "x",
                "--settings-json", '{"address": "help@shop.vn"}')
    assert again.returncode == 0, again.stderr  # the address is free again


def test_channel_audit_lists_the_changes(tmp_path: Path) -> None:
    t = json.loads(run(tmp_path, "tenant", "create", "--name", "Shop").stdout)["tenant_id"]
    cid = json.loads(run(tmp_path, "channel", "add", "--tenant", t, "--kind", "email", "--name", "Support",
                         "--credentials-json", '{"password": "old-password"}',
                         "--settings-json", '{"address": "cs@shop.vn"}').stdout)["channel_id"]
    assert run(tmp_path, "channel", "rotate", "--tenant", t, "--channel", cid,
               "--credentials-json", '{"password": "new-password"}').returncode == 0
    assert run(tmp_path, "channel", "remove", "--tenant", t, "--channel", cid).returncode == 0
    trail = run(tmp_path, "channel", "audit", "--tenant", t, "--channel", cid)  # a removed inbox's too
    entries = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [(e["action"], e["actor"], e["fields"]) for e in entries] == [
        ("remove", "cli", []), ("rotate", "cli", ["credentials.password"]),
        ("add", "cli", ["address", "credentials.password"])]
    assert "old-password" not in trail.stdout and "new-password" not in trail.stdout
