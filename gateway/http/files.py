"""Responses whose body is a file on disk, streamed by aiohttp from a thread.

aiohttp's `FileResponse` needs a transport with native sendfile, which connections served
through `gateway.edge.listen` do not offer; `web.Response(body=<open file>)` streams the
file in chunks read off the event loop and closes it when done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web


async def file_response(path: str | Path, headers: Mapping[str, str]) -> web.Response:
    """`path`'s bytes with `headers` (raises web.HTTPNotFound when it cannot be opened)."""
    try:
        f = await asyncio.to_thread(Path(path).open, "rb")
    except OSError:
        raise web.HTTPNotFound() from None
    resp = web.Response(body=f, headers=dict(headers))
    if "Content-Disposition" not in headers:  # aiohttp names a file body an attachment by default
        del resp.headers["Content-Disposition"]
    return resp
