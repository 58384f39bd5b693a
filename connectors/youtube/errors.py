"""Google JSON errors of the YouTube Data API and how the connector classifies them.

Shape: ``{"error": {"code": 403, "message": "…", "errors": [{"reason": "quotaExceeded", …}]}}``.
Branch on ``error.errors[0].reason`` (the message contains HTML). See docs/connectors.md.
"""

from __future__ import annotations

import enum
from typing import Any

QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# A source that answers with one of these is skipped until `source_recheck` has passed.
SOURCE_DEAD_REASONS = frozenset(
    {"commentsDisabled", "forbidden", "videoNotFound", "channelNotFound", "commentThreadNotFound"}
)


class ErrorKind(enum.Enum):
    QUOTA = "quota"  # daily quota spent: wait for the next Pacific midnight
    RATE = "rate"  # short-term rate limit, 429, 5xx: exponential backoff
    AUTH = "auth"  # 401: refresh the access token once
    INVALID_PAGE_TOKEN = "invalid_page_token"  # restart paging from the first page
    RETRY_ONCE = "retry_once"  # 400 processingFailure: occasionally transient
    PERMANENT = "permanent"  # everything else


class ApiError(Exception):
    """A non-2xx answer of the Data API."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, reason, message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"YouTube API {self.status} {self.reason or '-'}: {self.message[:200]}"

    @property
    def kind(self) -> ErrorKind:
        return classify(self.status, self.reason)


def classify(status: int, reason: str) -> ErrorKind:
    if reason in QUOTA_REASONS:
        return ErrorKind.QUOTA
    if reason in RATE_REASONS or status == 429 or status >= 500:
        return ErrorKind.RATE
    if status == 401:
        return ErrorKind.AUTH
    if reason == "invalidPageToken":
        return ErrorKind.INVALID_PAGE_TOKEN
    if status == 400 and reason == "processingFailure":
        return ErrorKind.RETRY_ONCE
    return ErrorKind.PERMANENT


def parse_error(status: int, body: Any, retry_after: float | None = None) -> ApiError:
    """An `ApiError` from a decoded JSON body (or anything else, for non-JSON answers)."""
    reason = ""
    message = ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        items = err.get("errors")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            reason = str(items[0].get("reason") or "")
    elif isinstance(body, str):
        message = body
    return ApiError(status=status, reason=reason, message=message, retry_after=retry_after)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
