"""Map Graph API failures onto the outbox's TransientError / PermanentError.

Graph error body: ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id", ...}}``.
Classification is by ``code`` / ``error_subcode`` first (Graph returns most errors as HTTP 400), then by
HTTP status when there is no parseable error body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, PermanentError, TransientError

# Throttling: 4 app limit, 17 user limit, 32 Page limit, 341 app limit, 613 Send API rate limit,
# 80006 Messenger business-use-case limit.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80006})
# Server side / "try again later": 1 unknown, 2 service unavailable, 1200 temporary send failure.
TEMPORARY_CODES = frozenset({1, 2, 1200})
# Everything else with an error body is permanent, notably 190/102 (token), 10/200-299/230/3 (permission,
# messaging window), 100 (bad parameter / 2018001 no matching user), 551 (person unavailable), 368 (policy).


@dataclass(frozen=True, slots=True)
class GraphError:
    status: int
    message: str
    type: str | None = None
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None
    is_transient: bool = False

    def describe(self) -> str:
        code = f"{self.code}" + (f"/{self.subcode}" if self.subcode is not None else "")
        return f"Graph API HTTP {self.status} code {code or '-'}: {self.message} (fbtrace_id={self.fbtrace_id})"


def parse_graph_error(status: int, body: bytes) -> GraphError:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    err: Any = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        snippet = body[:200].decode("utf-8", "replace")
        return GraphError(status=status, message=f"non-Graph error body: {snippet!r}")
    return GraphError(
        status=status,
        message=str(err.get("message", "")),
        type=err.get("type") if isinstance(err.get("type"), str) else None,
        code=_int(err.get("code")),
        subcode=_int(err.get("error_subcode")),
        fbtrace_id=err.get("fbtrace_id") if isinstance(err.get("fbtrace_id"), str) else None,
        is_transient=err.get("is_transient") is True,
    )


def classify(
    err: GraphError,
    headers: Mapping[str, str],
    *,
    rate_limit_retry_after: float,
    server_error_retry_after: float,
) -> ConnectorError:
    if err.code in RATE_LIMIT_CODES or err.status == 429:
        hint = _retry_after_from_headers(headers)
        return TransientError(err.describe(), retry_after=hint if hint is not None else rate_limit_retry_after)
    if err.code in TEMPORARY_CODES or err.is_transient:
        return TransientError(err.describe(), retry_after=server_error_retry_after)
    if err.code is None and (err.status >= 500 or err.status == 408):
        return TransientError(err.describe(), retry_after=server_error_retry_after)
    return PermanentError(err.describe())


def _retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` (seconds) or the largest `estimated_time_to_regain_access` (minutes) in
    `X-Business-Use-Case-Usage`."""
    raw = headers.get("Retry-After")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
    usage = headers.get("X-Business-Use-Case-Usage")
    if usage is None:
        return None
    try:
        doc = json.loads(usage)
    except ValueError:
        return None
    minutes: list[float] = []
    if isinstance(doc, dict):
        for rows in doc.values():
            for row in rows if isinstance(rows, list) else []:
                val = row.get("estimated_time_to_regain_access") if isinstance(row, dict) else None
                if isinstance(val, int | float) and not isinstance(val, bool) and val > 0:
                    minutes.append(float(val))
    return max(minutes) * 60.0 if minutes else None


def _int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None
