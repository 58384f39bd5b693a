"""Operations: JSON logs, new settings, metrics, the OpenAPI document matching the routes."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import aiohttp
import pytest
import yaml  # type: ignore[import-untyped]

from gateway.config import ConfigError, load_config
from gateway.ops.logs import JsonFormatter
from tests.support.server import make_config, run_gateway

ROOT = Path(__file__).resolve().parents[2]


def test_json_log_lines() -> None:
    fmt = JsonFormatter("node-7")
    rec = logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, "hello %s", ("Hà Nội",), None)
    line = fmt.format(rec)
    obj = json.loads(line)
    assert obj["message"] == "hello Hà Nội" and obj["level"] == "WARNING" and obj["logger"] == "gateway.x"
    assert obj["node_id"] == "node-7" and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"])
    assert "\n" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("g", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(fmt.format(rec))["exc_info"]


def test_new_settings() -> None:
    cfg = load_config({"RATE_VISITOR_MESSAGES_PER_SEC": "2.5", "MAX_CONNECTIONS_PER_IP": "7", "RETENTION_YEARS": "5",
                       "LOG_FORMAT": "json", "RETENTION_INTERVAL": "0"})
    assert cfg.limits.visitor_messages_per_sec == 2.5 and cfg.limits.max_connections_per_ip == 7
    assert cfg.privacy.retention_years == 5 and cfg.privacy.log_format == "json"
    assert cfg.privacy.retention_interval == 0
    for bad in ({"LOG_FORMAT": "xml"}, {"RATE_VISITOR_MESSAGES_PER_SEC": "0"}, {"MAX_CONNECTIONS_PER_IP": "0"},
                {"RATE_IP_UPLOADS_BURST": "0.5"}, {"RETENTION_YEARS": "-1"}):
        with pytest.raises(ConfigError):
            load_config(bad)


async def test_metrics_exposed(tmp_path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg, aiohttp.ClientSession() as http, \
            http.get(rg.url + "/metrics") as resp:
        text = await resp.text()
    for name in ("izh_open_connections", "izh_deliveries_total", "izh_socket_event_seconds", "izh_outbox_backlog",
                 "izh_calls_active", "izh_recording_bytes", "izh_draining", "izh_requests_in_flight",
                 "izh_rate_limit_buckets", "izh_rate_limited_total", "izh_retention_runs_total"):
        assert name in text, name


async def test_openapi_documents_every_rest_route(tmp_path) -> None:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    documented = {(m.upper(), "/api/v1" + p) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    async with run_gateway(make_config(tmp_path)) as rg:
        served = {(r.method, r.resource.canonical) for r in rg.gw.app.router.routes()
                  if r.resource is not None and r.resource.canonical.startswith("/api/v1/")
                  and r.method not in ("HEAD", "OPTIONS")}
    core = {s for s in served if not s[1].startswith(("/api/v1/widget", "/api/v1/uploads", "/api/v1/recordings",
                                                      "/api/v1/openapi", "/api/v1/calls",
                                                      "/api/v1/public"))}
    assert core <= documented, sorted(core - documented)
