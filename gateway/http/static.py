"""Built assets served as browsers expect: precompressed variants chosen by
`Accept-Encoding`, validators for revalidation (ETag → 304), and a cache policy.

The build (widget/build.mjs) writes `name.br` and `name.gz` beside each asset; a variant
is served only when it exists and the client accepts its coding, else the file itself.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web

from gateway.http.files import file_response

# Content-Coding → the suffix of its precompressed file, in the order we prefer them
CODINGS = (("br", ".br"), ("gzip", ".gz"))


def accepted_codings(header: str) -> set[str]:
    """The content codings an `Accept-Encoding` value accepts (q > 0); `*` stands for any.
    Bounded: at most the first 32 entries of at most 1 KiB are read."""
    out: set[str] = set()
    for item in header[:1024].split(",")[:32]:
        name, _, params = item.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q > 0 and name:
            out.add(name.strip().lower())
    return out


async def static_response(request: web.Request, path: Path, content_type: str, cache_control: str) -> web.Response:
    """`path` (which exists) or its best precompressed variant for this request."""
    accepted = accepted_codings(request.headers.get("Accept-Encoding", ""))
    chosen, coding = path, None
    for name, suffix in CODINGS:
        if name in accepted or "*" in accepted:
            variant = path.with_name(path.name + suffix)
            if await asyncio.to_thread(variant.is_file):
                chosen, coding = variant, name
                break
    st = await asyncio.to_thread(os.stat, chosen)
    etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}{"-" + coding if coding else ""}"'
    headers = {"Content-Type": content_type, "Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
    if coding is not None:
        headers["Content-Encoding"] = coding
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    return await file_response(chosen, headers)
