"""Typed error codes shared by the Socket.IO acks and the REST API (docs/protocol.md)."""

from __future__ import annotations

import enum
from typing import Any


class Code(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_EVENT = "unknown_event"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TEXT_TOO_LONG = "text_too_long"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    IDENTITY_REQUIRED = "identity_required"
    INVALID_IDENTITY = "invalid_identity"
    RELOAD_REQUIRED = "reload_required"
    CONVERSATION_CLOSED = "conversation_closed"
    CONFLICT = "conflict"  # the request contradicts the state (details.reason says how)
    CONTACT_ERASED = "contact_erased"
    LIMIT_REACHED = "limit_reached"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[Code, int] = {
    Code.BAD_REQUEST: 400,
    Code.UNKNOWN_EVENT: 400,
    Code.PAYLOAD_TOO_LARGE: 413,
    Code.TEXT_TOO_LONG: 400,
    Code.UNAUTHORIZED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FOUND: 404,
    Code.IDENTITY_REQUIRED: 401,
    Code.INVALID_IDENTITY: 401,
    Code.RELOAD_REQUIRED: 409,
    Code.CONVERSATION_CLOSED: 409,
    Code.CONFLICT: 409,
    Code.CONTACT_ERASED: 410,
    Code.LIMIT_REACHED: 429,
    Code.RATE_LIMITED: 429,
    Code.UNAVAILABLE: 503,
    Code.INTERNAL: 500,
}


class GatewayError(Exception):
    def __init__(self, code: Code, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"ok": False, "error": err}


def bad_request(message: str, **details: Any) -> GatewayError:
    return GatewayError(Code.BAD_REQUEST, message, **details)


def not_found(what: str) -> GatewayError:
    return GatewayError(Code.NOT_FOUND, f"{what} not found")
