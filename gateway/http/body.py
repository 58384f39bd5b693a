"""The one reader of JSON request bodies, for every REST route and webhook.

`read_body` reads at most `limit` bytes (413 `payload_too_large` above it, before reading
when `Content-Length` says so); `parse_json` decodes with orjson and answers 400
`bad_request` for anything that is not JSON, is not UTF-8, or nests deeper than
`MAX_DEPTH` arrays/objects. orjson itself refuses nesting deeper than 1,024 levels; the
lower bound keeps every decoded body encodable again by the stdlib `json` (which the stores
use and which raises `RecursionError` near 1,000 levels). The work is linear in the body's
size: one orjson pass and one walk over the decoded values.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.core.errors import Code, GatewayError, bad_request

MAX_DEPTH = 64


def too_large(limit: int) -> GatewayError:
    return GatewayError(Code.PAYLOAD_TOO_LARGE, f"request body larger than {limit} bytes", limit=limit)


def nesting_exceeds(obj: Any, limit: int) -> bool:
    """Whether `obj` has arrays/objects nested more than `limit` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes, *, empty: Any = None) -> Any:
    """`raw` decoded as JSON (`empty` for an empty body); 400 `bad_request` when it is not
    JSON, not UTF-8, or nested deeper than `MAX_DEPTH`."""
    if not raw:
        return empty
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:  # also: not UTF-8, nested deeper than 1,024 levels
        raise bad_request(f"body must be JSON, nested at most {MAX_DEPTH} levels deep") from None
    if nesting_exceeds(obj, MAX_DEPTH):
        raise bad_request(f"body nested deeper than {MAX_DEPTH} levels")
    return obj


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body, at most `limit` bytes: 413 `payload_too_large` when the declared
    `Content-Length` or the bytes received go over it (reading stops there)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int, *, empty: Any = None) -> Any:
    """`read_body` then `parse_json`."""
    return parse_json(await read_body(request, limit), empty=empty)
