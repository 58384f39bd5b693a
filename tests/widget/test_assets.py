"""Widget and console assets as browsers fetch them: precompressed variants by
Accept-Encoding (the widget's first load within 30 KB on the wire), revalidation by ETag,
the compressed files never served raw, the loader cached briefly and the content-hashed
bundles for good, and a favicon."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import aiohttp
from multidict import CIMultiDict

from tests.support.server import make_config, run_gateway

DIST = Path(__file__).resolve().parents[2] / "widget" / "dist"


async def _get(url: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as http, \
            http.get(url, headers={"Accept-Encoding": "identity", **headers}) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


def bundle_named_by(name: str) -> str:
    """The content-hashed bundle that dist/`name` (the loader or the console page) loads."""
    m = re.search(r"(widget|console)\.[0-9a-f]{10}\.js", (DIST / name).read_text(encoding="utf-8"))
    assert m is not None and (DIST / m[0]).is_file()
    return m[0]


async def test_the_widget_goes_out_compressed_and_revalidates(tmp_path: Path) -> None:
    bundle = bundle_named_by("loader.js")
    original = (DIST / bundle).read_bytes()
    async with run_gateway(make_config(tmp_path)) as rg:
        status, h, loader = await _get(f"{rg.url}/widget/loader.js", **{"Accept-Encoding": "gzip, deflate, br"})
        assert status == 200 and h["Content-Encoding"] == "br" and h["Cache-Control"] == "public, max-age=300"
        url = f"{rg.url}/widget/{bundle}"
        status, h, body = await _get(url, **{"Accept-Encoding": "gzip, deflate, br"})
        assert status == 200 and h["Content-Encoding"] == "br" and h["Vary"] == "Accept-Encoding"
        assert h["Cache-Control"] == "public, max-age=31536000, immutable"
        assert len(loader) + len(body) <= 30 * 1024, len(body)  # the widget's first load on the wire
        assert body == (DIST / f"{bundle}.br").read_bytes()
        status, h, body = await _get(url, **{"Accept-Encoding": "gzip"})
        assert h["Content-Encoding"] == "gzip" and gzip.decompress(body) == original
        status, h, body = await _get(url, **{"Accept-Encoding": "br;q=0, gzip;q=0"})
        assert "Content-Encoding" not in h and body == original
        assert h["Cache-Control"] == "public, max-age=31536000, immutable"
        status, h2, body = await _get(url, **{"If-None-Match": h["ETag"]})
        assert status == 304 and body == b""
        assert (await _get(f"{url}.br"))[0] == 404 and (await _get(f"{url}.gz"))[0] == 404
        status, h, body = await _get(f"{rg.url}/console", **{"Accept-Encoding": "br"})
        assert status == 200 and h["Content-Encoding"] == "br" and h["Cache-Control"] == "no-cache"
        status, h, _ = await _get(f"{rg.url}/widget/{bundle_named_by('console.html')}")
        assert status == 200 and h["Cache-Control"] == "public, max-age=31536000, immutable"
        assert (await _get(f"{rg.url}/widget/widget.0123456789.js"))[0] == 404


async def test_the_favicon(tmp_path: Path) -> None:
    async with run_gateway(make_config(tmp_path)) as rg:
        status, h, body = await _get(f"{rg.url}/favicon.ico")
        assert status == 200 and h["Content-Type"] == "image/png" and body.startswith(b"\x89PNG")
