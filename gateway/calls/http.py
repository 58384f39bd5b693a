"""REST: `GET /api/v1/recordings/{id}` (decrypted Ogg/Opus, agent Bearer token, own tenant
only, HTTP Range; streamed one 64 KiB age chunk at a time, only the chunks the range needs)
and the `/call-test` page (plain JS caller/agent used by browser tests)."""

from __future__ import annotations

import logging
import re
from importlib import resources

from aiohttp import web

from gateway.core.errors import Code, GatewayError, not_found
from gateway.core.validation import req_id
from gateway.http.api import Api
from recording.ageseek import AgeFormatError
from recording.service import RecordingGone, Recordings

log = logging.getLogger(__name__)

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """(start, end inclusive) of a single `bytes=` range of a body of `size` > 0 bytes (an end
    past it is clamped, a suffix longer than it is the whole body). Raises 416 with
    `Content-Range: bytes */size` on anything else (malformed, several ranges, start past the end)."""
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
            row = await self.recordings.row(p.tenant_id, rec_id)
            if row.state == "recording":
                raise GatewayError(Code.CONVERSATION_CLOSED, "the call is still being recorded")
            pb = await self.recordings.open(row)
        except RecordingGone:
            raise not_found("recording") from None
        except AgeFormatError as exc:
            log.error("recording %s of tenant %s cannot be played: %s", rec_id, p.tenant_id, exc)
            raise GatewayError(Code.INTERNAL, "the recording failed authentication") from None
        size = pb.size
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store",
                   "X-Recording-Complete": "true" if pb.complete else "false"}
        rng = request.headers.get("Range")
        start, end, status = 0, size, 200
        if rng and size:
            first, last = parse_range(rng, size)
            start, end, status = first, last + 1, 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = "audio/ogg"
        resp.content_length = end - start
        try:
            await resp.prepare(request)
            if request.method != "HEAD":
                async for piece in pb.stream(start, end):
                    await resp.write(piece)
            await resp.write_eof()
        except AgeFormatError as exc:
            # the status is sent: the body ends short and the connection is closed, so the
            # client sees an incomplete response, never unauthenticated bytes
            log.error("recording %s of tenant %s: %s", rec_id, p.tenant_id, exc)
            resp.force_close()
        except ConnectionError:  # the client went away (a browser asks `bytes=N-`, then seeks)
            pass
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
