"""Classify Zalo OA API error codes (HTTP 200, `{"error": <negative int>, "message": ...}`)."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    TOKEN = "token"  # refresh the access token, retry once
    TRANSIENT = "transient"  # retry later (outbox backoff)
    PERMANENT = "permanent"  # the message ends failed


# -216 "Access token is invalid", -220 "access_token is expired or removed";
# -124 is the ZNS/ZBS spelling of an invalid token (not expected from /oa/message/cs).
TOKEN_CODES = frozenset({-216, -220, -124})
# code -> retry_after seconds. -32 per-minute rate limit; -211/-218 quota; -100 unknown/expired
# attachment (Chatwoot retries it); -234 night-time ban (22:00-06:00) if it ever hits CS messages.
TRANSIENT_CODES: dict[int, float] = {-32: 60.0, -100: 30.0, -211: 3600.0, -218: 3600.0, -234: 3600.0}
# Documented for the reader; every other non-zero code is permanent too.
PERMANENT_CODES = frozenset(
    {-201, -204, -205, -209, -210, -212, -213, -217, -221, -223, -224, -227, -230, -232, -233, -240, -244}
)


def classify(code: int) -> ErrorKind:
    if code in TOKEN_CODES:
        return ErrorKind.TOKEN
    if code in TRANSIENT_CODES:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def retry_after(code: int) -> float | None:
    return TRANSIENT_CODES.get(code)
