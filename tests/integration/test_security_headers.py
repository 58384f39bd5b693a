"""Security headers: every response is `nosniff` with a `Server` that names no version; every
HTML page the gateway serves (found by requesting every parameterless GET route) has a strict
Content-Security-Policy, refuses framing, and carries no inline script."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

from gateway.admin.demo import ensure_demo
from gateway.http.headers import origin_of, page_policy
from tests.support.server import RunningGateway, make_config, run_gateway
from tests.widget.test_assets import bundle_named_by

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"/console", "/demo", "/call-test"}


@pytest.fixture(scope="module")
def built() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "build-widget.sh")], check=True)


@pytest.fixture
async def demo(tmp_path, built: None) -> AsyncIterator[RunningGateway]:
    config = make_config(tmp_path)
    async with run_gateway(config) as rg:
        await ensure_demo(rg.gw.store, config, now=time.time())
        yield rg


class _Scripts(HTMLParser):
    """Inline scripts and event-handler attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower() for k, _ in attrs}
        self.inline += [f"{tag} {k}=" for k in names if k.startswith("on")]
        if tag == "script":
            self._in_script = "src" not in names

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:80])


def _directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def _common(path: str, h: Mapping[str, str]) -> None:
    assert h.get("X-Content-Type-Options") == "nosniff", path
    assert h.get("Referrer-Policy"), path
    server = h.get("Server", "")
    assert "aiohttp" not in server.lower() and "python" not in server.lower() and "/" not in server, (path, server)


async def test_every_page_has_a_strict_csp_and_refuses_framing(demo: RunningGateway) -> None:
    gets = sorted({r.resource.canonical for r in demo.gw.app.router.routes()
                   if r.method == "GET" and r.resource is not None and "{" not in r.resource.canonical})
    html: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for path in gets:
            async with http.get(demo.url + path) as r:
                text = await r.text(errors="replace")
                _common(path, r.headers)
                if r.content_type != "text/html":
                    continue
                assert r.status == 200, (path, r.status)
                html.add(path)
                csp = _directives(r.headers["Content-Security-Policy"])
                assert csp["default-src"] == ["'self'"], path
                assert csp["script-src"] == ["'self'"], path  # no inline script, no eval
                assert csp["frame-ancestors"] == ["'none'"] and r.headers["X-Frame-Options"] == "DENY", path
                assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"], path
                parser = _Scripts()
                parser.feed(text)
                assert parser.inline == [], (path, parser.inline)
    assert html == PAGES


async def test_assets_and_api_responses_are_nosniff(demo: RunningGateway) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/widget/loader.js", f"/widget/{bundle_named_by('console.html')}",
                     f"/widget/{bundle_named_by('loader.js')}", "/call-test/call-test.js", "/healthz",
                     "/api/v1/me", "/api/v1/nothing-here", "/widget/missing.js"):
            async with http.get(demo.url + path) as r:
                await r.read()
                _common(path, r.headers)
                if path.endswith(".js") and "missing" not in path:
                    assert r.status == 200, path  # a real asset, not a 404 page
                assert "Content-Security-Policy" not in r.headers or r.content_type == "text/html", path


def test_public_url_origin_is_allowed_for_media_only() -> None:
    assert origin_of("https://chat.example.com/base/") == ("https://chat.example.com",)
    assert origin_of(None) == () and origin_of("not a url") == ()
    csp = _directives(page_policy(("https://chat.example.com",)))
    assert csp["img-src"] == ["'self'", "https://chat.example.com"]
    assert csp["script-src"] == ["'self'"]
