"""REST: `GET /api/v1/recordings/{id}` (decrypted Ogg/Opus, agent Bearer token, own tenant
only, HTTP Range) and the `/call-test` page (plain JS caller/agent used by browser tests)."""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

from gateway.core.errors import Code, GatewayError, not_found
from gateway.core.validation import req_id
from gateway.http.api import Api
from recording.service import RecordingGone, Recordings

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single `bytes=` range; None = whole body. Raises on bad ranges."""
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        n = int(m.group(2))
        start, end = max(size - n, 0), size - 1
    if start >= size or start > end:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


class CallRoutes:
    def __init__(self, api: Api, recordings: Recordings) -> None:
        self.api = api
        self.recordings = recordings

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/recordings/{id}", self.playback),
            web.get("/call-test", self.page),
            web.get("/call-test/socket.io.min.js", self.sio_bundle),
            web.get("/call-test/call-test.js", self.page_script),
        ]

    async def playback(self, request: web.Request) -> web.StreamResponse:
        p = await self.api.principal(request)
        rec_id = req_id({"id": request.match_info["id"]}, "id")
        try:
            dec = await self.recordings.decrypt(p.tenant_id, rec_id)
        except RecordingGone:
            raise not_found("recording") from None
        if dec.row.state == "recording":
            raise GatewayError(Code.CONVERSATION_CLOSED, "the call is still being recorded")
        data, size = dec.data, len(dec.data)
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store",
                   "X-Recording-Complete": "true" if dec.complete else "false"}
        rng = request.headers.get("Range")
        status = 200
        if rng and size:
            start, end = parse_range(rng, size)  # type: ignore[misc]
            data = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            status = 206
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = "audio/ogg"
        resp.content_length = len(data)
        await resp.prepare(request)
        for off in range(0, len(data), 64 * 1024):
            await resp.write(data[off:off + 64 * 1024])
        await resp.write_eof()
        return resp

    async def page(self, request: web.Request) -> web.Response:
        html = resources.files("gateway.calls").joinpath("static/call-test.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def page_script(self, request: web.Request) -> web.Response:
        js = resources.files("gateway.calls").joinpath("static/call-test.js").read_bytes()
        return web.Response(body=js, content_type="application/javascript", headers={"Cache-Control": "no-store"})

    async def sio_bundle(self, request: web.Request) -> web.Response:
        js = resources.files("gateway.calls").joinpath("static/socket.io.min.js").read_bytes()
        return web.Response(body=js, content_type="application/javascript")
