from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_config


def test_defaults_are_embedded() -> None:
    c = load_config({})
    assert c.storage.database_url is None and c.storage.redis_url is None
    assert c.server.port == 8080
    assert (c.server.ping_interval, c.server.ping_timeout, c.server.connect_timeout) == (25.0, 20.0, 10.0)
    assert load_config({"PING_INTERVAL": "0.3", "CONNECT_TIMEOUT": "0"}).server.ping_interval == 0.3
    assert c.sqlite_path.endswith("gateway.sqlite3")


def test_env_and_file(tmp_path) -> None:
    f = tmp_path / "gw.env"
    f.write_text("# comment\nPORT=9000\nMAX_TEXT_CHARS=10\nREDIS_URL='redis://127.0.0.1:6379/0'\n")
    c = load_config({"GATEWAY_CONFIG": str(f), "PORT": "9001"})
    assert c.server.port == 9001  # environment wins over the file
    assert c.limits.max_text_chars == 10
    assert c.storage.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    "env",
    [
        {"PORT": "http"},
        {"PORT": "70000"},
        {"PING_INTERVAL": "0"},
        {"PING_TIMEOUT": "fast"},
        {"CONNECT_TIMEOUT": "-1"},
        {"DATABASE_URL": "mysql://x"},
        {"REDIS_URL": "http://x"},
        {"TLS_CERT": "/a.pem"},
        {"MAX_TEXT_CHARS": "0"},
        {"LOOP_STALL_MS": "-1"},
        {"EVENT_LOOP": "trio"},
        {"WORKERS": "0"},
        {"WORKERS": "33"},
        {"WORKERS": "2"},  # embedded SQLite + in-process broker cannot be shared by processes
        {"WORKERS": "2", "DATABASE_URL": "sqlite:///x.db", "REDIS_URL": "redis://h"},
        {"WORKERS": "2", "DATABASE_URL": "postgresql://h/db"},
        {"WORKERS": "2", "DATABASE_URL": "postgresql://h/db", "REDIS_URL": "redis://h", "PORT": "0"},
        {"WORKERS": "2", "DATABASE_URL": "postgresql://h/db", "REDIS_URL": "redis://h", "TLS_CERT": "/c",
         "TLS_KEY": "/k"},
        {"LIMITS_SCOPE": "world", "REDIS_URL": "redis://h"},
        {"LIMITS_SCOPE": "cluster"},  # shared through Redis, which is not configured
        {"PING_INTERVAL": "0"},
        {"PING_TIMEOUT": "-1"},
        {"CONNECT_TIMEOUT": "soon"},
        {"DATABASE_STATEMENT_TIMEOUT": "0"},
        {"DATABASE_ACQUIRE_TIMEOUT": "-1"},
        {"SQLITE_MIN_FREE_MB": "-5"},
    ],
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config(env)


def test_workers_with_shared_backends() -> None:
    c = load_config({"WORKERS": "4", "DATABASE_URL": "postgresql://h/db", "REDIS_URL": "redis://h"})
    assert c.server.workers == 4 and load_config({}).server.workers == 1
    assert load_config({}).server.loop_stall_ms == 200 and load_config({"LOOP_STALL_MS": "0"}).server.loop_stall_ms == 0


def test_limits_scope() -> None:
    assert load_config({}).limits.scope == "node"
    assert load_config({"LIMITS_SCOPE": "cluster", "REDIS_URL": "redis://h"}).limits.scope == "cluster"


def test_bad_file_line(tmp_path) -> None:
    f = tmp_path / "gw.env"
    f.write_text("NOEQUALS\n")
    with pytest.raises(ConfigError):
        load_config({"GATEWAY_CONFIG": str(f)})


def test_retired_sqlite_settings_are_ignored_with_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="gateway.config"):
        c = load_config({"SQLITE_WRITE_THREAD": "false", "SQLITE_WAL_GATHER": "not even a bool"})
    assert c.storage == load_config({}).storage
    warned = [r.getMessage() for r in caplog.records if r.name == "gateway.config"]
    assert len(warned) == 2 and warned[0].startswith("SQLITE_WAL_GATHER is no longer a setting and is ignored")
    assert warned[1].startswith("SQLITE_WRITE_THREAD is no longer a setting and is ignored")
    caplog.clear()
    load_config({})
    assert not caplog.records


def test_retired_transport_settings_are_ignored_with_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="gateway.config"):
        c = load_config({"SEND_THREAD": "true", "WS_TRANSPORT": "stock", "WS_COMPRESSION": "maybe"})
    assert c.server == load_config({}).server
    warned = sorted(r.getMessage().split()[0] for r in caplog.records if r.name == "gateway.config")
    assert warned == ["SEND_THREAD", "WS_COMPRESSION", "WS_TRANSPORT"]


def test_heartbeat_and_connect_timeout_in_seconds() -> None:
    d = load_config({}).server
    assert (d.ping_interval, d.ping_timeout, d.connect_timeout) == (25.0, 20.0, 10.0)
    c = load_config({"PING_INTERVAL": "0.3", "PING_TIMEOUT": "0.2", "CONNECT_TIMEOUT": "0.5"}).server
    assert (c.ping_interval, c.ping_timeout, c.connect_timeout) == (0.3, 0.2, 0.5)


def test_database_timeouts_and_free_space() -> None:
    d = load_config({}).store_limits
    assert (d.statement_timeout, d.acquire_timeout, d.min_free_bytes) == (5.0, 5.0, 64 * 1024 * 1024)
    c = load_config({"DATABASE_STATEMENT_TIMEOUT": "2.5", "DATABASE_ACQUIRE_TIMEOUT": "0.5", "SQLITE_MIN_FREE_MB": "0"})
    assert (c.store_limits.statement_timeout, c.store_limits.acquire_timeout, c.store_limits.min_free_bytes) == (
        2.5, 0.5, 0)


def test_presence_ttl_and_interval() -> None:
    c = load_config({})
    assert (c.presence_ttl, c.presence_interval) == (30.0, 10.0)
    c = load_config({"PRESENCE_TTL": "2", "PRESENCE_INTERVAL": "0.5"})
    assert (c.presence_ttl, c.presence_interval) == (2.0, 0.5)
    for env in ({"PRESENCE_TTL": "5", "PRESENCE_INTERVAL": "5"}, {"PRESENCE_TTL": "0"},
                {"PRESENCE_INTERVAL": "-1"}, {"PRESENCE_TTL": "soon"}):
        with pytest.raises(ConfigError):
            load_config(env)
