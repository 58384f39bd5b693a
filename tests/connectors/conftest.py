"""Fixtures of the connector framework tests (prefixed `cx_` so channel subpackages are unaffected)."""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import Config, StorageConfig
from tests.support.procs import drop_schema
from tests.support.server import make_config

PG_DSN = os.environ.get("IZIHELP_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

FAST_OUTBOX = {
    "OUTBOX_BASE_DELAY": "0.05",
    "OUTBOX_MAX_DELAY": "0.2",
    "OUTBOX_POLL_INTERVAL": "0.1",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "0",
}


@pytest.fixture
def cx_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**FAST_OUTBOX, "MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("OUTBOX_AUTOSTART", raising=False)
    return env


@pytest.fixture(params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)])
async def cx_config(request: pytest.FixtureRequest, tmp_path: Path, cx_env: dict[str, str]) -> AsyncIterator[Config]:
    """A gateway config on SQLite or on a random PostgreSQL schema (dropped afterwards)."""
    base = make_config(tmp_path)
    if request.param == "sqlite":
        yield base
        return
    schema = f"cx_{uuid.uuid4().hex[:12]}"
    try:
        yield replace(base, storage=StorageConfig(database_url=PG_DSN, database_schema=schema,
                                                  data_dir=str(tmp_path)))
    finally:
        await drop_schema(schema, PG_DSN)


@pytest.fixture
def cx_sqlite_config(tmp_path: Path, cx_env: dict[str, str]) -> Config:
    return make_config(tmp_path)
