"""HTTP calls to the Zalo OA Open API and OAuth v4. Transport failures become connector errors."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from connectors.base import PermanentError, TransientError
from connectors.zalo.config import ZaloAccount, ZaloTokens

CS_MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_PATHS = {"image": "/v2.0/oa/upload/image", "file": "/v2.0/oa/upload/file"}  # multipart field `file`
OAUTH_TOKEN_PATH = "/v4/oa/access_token"
MAX_TEXT = 2000


class RefreshError(PermanentError):
    """Zalo refused the refresh token: an OA admin must re-authorise the app."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    raw = resp.headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


async def _read_json(resp: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    if resp.status >= 500 or resp.status in (408, 429):
        raise TransientError(f"{what}: HTTP {resp.status}", retry_after=_retry_after(resp))
    if resp.status != 200:
        raise PermanentError(f"{what}: HTTP {resp.status}")
    try:
        body = json.loads(await resp.read())
    except ValueError as e:
        raise TransientError(f"{what}: response is not JSON") from e
    if not isinstance(body, dict):
        raise TransientError(f"{what}: response is not a JSON object")
    return body


async def post_cs_message(
    session: aiohttp.ClientSession, account: ZaloAccount, access_token: str, body: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """POST a customer-service message; return the JSON envelope (`error` may be non-zero)."""
    url = account.api_base.rstrip("/") + CS_MESSAGE_PATH
    headers = {"access_token": access_token, "Content-Type": "application/json"}
    try:
        async with session.post(
            url,
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            return await _read_json(resp, "zalo send")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise TransientError(f"zalo send: {type(e).__name__}: {e}") from e


async def upload(
    session: aiohttp.ClientSession, account: ZaloAccount, access_token: str, kind: str, name: str, mime_type: str,
    data: bytes, timeout: float,
) -> dict[str, Any]:
    """POST a file to the OA's upload API (`kind` "image" → `data.attachment_id`, "file" →
    `data.token`); return the JSON envelope (`error` may be non-zero)."""
    url = account.api_base.rstrip("/") + UPLOAD_PATHS[kind]
    form = aiohttp.FormData(quote_fields=False)  # the file name as browsers send it: UTF-8, not %-escaped
    form.add_field("file", data, filename=name, content_type=mime_type)
    try:
        async with session.post(url, data=form, headers={"access_token": access_token},
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return await _read_json(resp, f"zalo upload {kind}")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise TransientError(f"zalo upload {kind}: {type(e).__name__}: {e}") from e


async def refresh_tokens(
    session: aiohttp.ClientSession, account: ZaloAccount, refresh_token: str, now: float, timeout: float
) -> ZaloTokens:
    """Exchange the (single-use) refresh token for a new access + refresh token pair."""
    url = account.oauth_base.rstrip("/") + OAUTH_TOKEN_PATH
    form = {"app_id": account.app_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
    try:
        async with session.post(
            url,
            data=form,
            headers={"secret_key": account.app_secret_key},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            body = await _read_json(resp, "zalo token refresh")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise TransientError(f"zalo token refresh: {type(e).__name__}: {e}") from e
    access, new_refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(new_refresh, str) or not new_refresh:
        code = body.get("error")
        text = body.get("message") or body.get("error_name") or body.get("error_description") or ""
        num = code if isinstance(code, int) else None
        raise RefreshError(f"zalo token refresh refused: {code} {text}".strip(), num)
    try:
        expires_in = float(body.get("expires_in", 3600))  # a string of seconds on the wire
    except (TypeError, ValueError):
        expires_in = 3600.0
    return ZaloTokens(access_token=access, refresh_token=new_refresh, expires_at=now + expires_in)
