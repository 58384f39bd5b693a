"""JSON errors for every REST failure: `{"ok": false, "error": {"code", "message"}}`."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.core.errors import Code, GatewayError
from gateway.store import NotFound

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: Code.BAD_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.BAD_REQUEST,
    413: Code.PAYLOAD_TOO_LARGE,
}


def error_response(exc: GatewayError) -> web.Response:
    """The JSON error; an error with `details.retry_after` (seconds: `unavailable`,
    `rate_limited`) also carries it as ``Retry-After`` (whole seconds, at least 1)."""
    headers: dict[str, str] = {}
    retry_after = exc.details.get("retry_after")
    if isinstance(retry_after, (int, float)):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.json_response(exc.to_dict(), status=exc.http_status, headers=headers)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc)
    except NotFound:
        return error_response(GatewayError(Code.NOT_FOUND, "not found"))
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = _HTTP_CODES.get(exc.status, Code.BAD_REQUEST)
        kept = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        return web.json_response(  # the exception's own headers kept (Allow, Content-Range, ...)
            {"ok": False, "error": {"code": code.value, "message": exc.reason}}, status=exc.status, headers=kept
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(GatewayError(Code.INTERNAL, "internal error"))
