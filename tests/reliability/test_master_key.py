"""MASTER_KEY checked at start: a malformed key and a key other than the one the data was
sealed with stop the process with a configuration error (exit 2) naming the variable; the
rotation command re-seals everything under a new key."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.feature import CONNECTORS_KEY
from gateway.admin.masterkey import CANARY_SETTING, rotate_command
from gateway.composition import default_features
from gateway.config import Config, ConfigError, load_config
from gateway.core.domain import Channel
from gateway.security.crypto import parse_key
from recording.keys import KeyRing
from recording.masterkey import Sealer
from tests.support.procs import PG_DSN, ROOT, drop_schema
from tests.support.server import make_config, run_gateway


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def config(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Config]:
    cfg = make_config(tmp_path)
    if request.param == "sqlite":
        yield cfg
        return
    schema = f"mk_{uuid.uuid4().hex[:12]}"
    try:
        yield replace(cfg, storage=replace(cfg.storage, database_url=PG_DSN, database_schema=schema))
    finally:
        await drop_schema(schema)


def test_a_malformed_master_key_is_a_configuration_error() -> None:
    for bad in ("not-base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError, match="MASTER_KEY must be base64 of 32 bytes"):
            load_config({"MASTER_KEY": bad})
    load_config({"MASTER_KEY": new_key()})


def gateway_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`python -m gateway` (serve) on DATA_DIR=tmp_path; its exit once it stops."""
    full = {**os.environ, "DATA_DIR": str(tmp_path), "HOST": "127.0.0.1", "PORT": "0", **env}
    full.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "gateway"], env=full, cwd=ROOT, capture_output=True, timeout=120)


def test_the_process_refuses_to_start_with_a_malformed_master_key(tmp_path: Path) -> None:
    out = gateway_process(tmp_path, MASTER_KEY="not-base64!")
    assert out.returncode == 2
    assert b"configuration error: MASTER_KEY must be base64 of 32 bytes" in out.stderr


async def test_the_process_refuses_to_start_with_another_master_key(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_KEY", new_key())
    async with run_gateway(make_config(tmp_path)):  # the first start seals the canary under the key
        pass
    out = gateway_process(tmp_path, MASTER_KEY=new_key())
    assert out.returncode == 2, out.stderr
    assert b"configuration error: MASTER_KEY is not the key this database's data was sealed with" in out.stderr


async def test_a_wrong_key_is_refused_on_both_stores(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key()
    monkeypatch.setenv("MASTER_KEY", key)
    async with run_gateway(config) as rg:
        nt = await rg.tenant()
        await rg.gw.app[CONNECTORS_KEY].ctx.channels.add(
            tenant_id=nt.tenant.id, kind=Channel.EMAIL, name="Support", credentials={"password": "p"},
            settings={"address": "support@shop.test"})
    monkeypatch.setenv("MASTER_KEY", new_key())
    with pytest.raises(ConfigError, match=r"MASTER_KEY is not the key .* canary settings\.master_key_check"):
        async with run_gateway(config):
            pass
    # a database sealed before the canary existed: its sealed data is what the key must open
    monkeypatch.setenv("MASTER_KEY", key)
    async with run_gateway(config) as rg, rg.gw.db.transaction() as conn:
        await conn.execute("DELETE FROM settings WHERE key = $1", CANARY_SETTING)
    monkeypatch.setenv("MASTER_KEY", new_key())
    with pytest.raises(ConfigError, match="credentials does not open"):
        async with run_gateway(config):
            pass
    monkeypatch.setenv("MASTER_KEY", key)
    async with run_gateway(config) as rg, rg.gw.db.reader() as conn:
        assert await conn.fetchrow("SELECT value FROM settings WHERE key = $1", CANARY_SETTING) is not None


async def test_a_malformed_master_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASTER_KEY", raising=False)
    (tmp_path / "master.key").write_text("not-base64!\n")
    with pytest.raises(ConfigError, match=r"master\.key .*must be base64 of 32 bytes"):
        async with run_gateway(make_config(tmp_path)):
            pass


async def test_rotation_reseals_everything_under_the_new_key(config: Config,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = new_key(), new_key()
    monkeypatch.setenv("MASTER_KEY", old)
    async with run_gateway(config) as rg:
        nt = await rg.tenant()
        channels = rg.gw.app[CONNECTORS_KEY].ctx.channels
        ch = await channels.add(tenant_id=nt.tenant.id, kind=Channel.EMAIL, name="Support",
                                credentials={"password": "hunter2"}, settings={"address": "support@shop.test"})
        rec_key = await KeyRing(rg.gw.db, Sealer(parse_key(old)), time.time).current(nt.tenant.id)
        identity = str(await KeyRing(rg.gw.db, Sealer(parse_key(old)), time.time).identity(nt.tenant.id,
                                                                                            rec_key.key_id))
        data_dir, embedded = config.storage.data_dir, not config.storage.database_url
        sealed = [column for feature in default_features() for column in feature.sealed]
        # the wrong current key changes nothing
        with pytest.raises(ConfigError, match="MASTER_KEY is not the key"):
            await rotate_command(rg.gw.db, {"MASTER_KEY": new_key(), "NEW_MASTER_KEY": new}, data_dir,
                                 embedded=embedded, sealed=sealed)
        with pytest.raises(ConfigError, match="NEW_MASTER_KEY must be base64 of 32 bytes"):
            await rotate_command(rg.gw.db, {"MASTER_KEY": old, "NEW_MASTER_KEY": "not-base64!"}, data_dir,
                                 embedded=embedded, sealed=sealed)
        out = await rotate_command(rg.gw.db, {"MASTER_KEY": old, "NEW_MASTER_KEY": new}, data_dir,
                                   embedded=embedded, sealed=sealed)
        assert out["channel_credentials"] == 1 and out["recording_identities"] == 1 and out["key_file"] is None
    with pytest.raises(ConfigError, match="MASTER_KEY is not the key"):
        async with run_gateway(config):
            pass
    monkeypatch.setenv("MASTER_KEY", new)
    async with run_gateway(config) as rg:
        channels = rg.gw.app[CONNECTORS_KEY].ctx.channels
        assert await channels.credentials(ch) == {"password": "hunter2"}
        ring = KeyRing(rg.gw.db, Sealer(parse_key(new)), time.time)
        assert str(await ring.identity(nt.tenant.id, rec_key.key_id)) == identity


def test_rotation_command_replaces_the_generated_key_file(tmp_path: Path) -> None:
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        e = {k: v for k, v in os.environ.items() if k not in ("MASTER_KEY", "DATABASE_URL", "GATEWAY_CONFIG")}
        e.update({"DATA_DIR": str(tmp_path), **env})
        return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, env=e,
                              cwd=ROOT, timeout=60, check=False)

    t = json.loads(run("tenant", "create", "--name", "Shop").stdout)["tenant_id"]
    added = run("channel", "add", "--tenant", t, "--kind", "email", "--name", "Support",
                "--credentials-json", '{"password": "hunter2"}', "--settings-json", '{"address": "cs@shop.vn"}')
    assert added.returncode == 0, added.stderr
    key_file = tmp_path / "master.key"
    before = key_file.read_text()
    missing = run("master-key", "rotate")
    assert missing.returncode == 2 and "NEW_MASTER_KEY is not set" in missing.stderr
    new = new_key()
    rotated = run("master-key", "rotate", NEW_MASTER_KEY=new)
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["channel_credentials"] == 1
    assert key_file.read_text().strip() == new != before.strip()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run("channel", "list", "--tenant", t).returncode == 0
    wrong = run("channel", "list", "--tenant", t, MASTER_KEY=before.strip())
    assert wrong.returncode == 2 and "MASTER_KEY is not the key" in wrong.stderr
