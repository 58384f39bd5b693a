"""`channel test` of a Facebook Page inbox (connectors/probe.py): Graph `GET /{version}/me`
with the Page token (`page_token`: the token works and is the Page's whose id is the
inbox address), then the same call with ``appsecret_proof`` = HMAC-SHA256(App Secret, Page
token) (`app_secret`: Graph answers code 100 "Invalid appsecret_proof" when the App Secret
is not the one of the app that issued the token; the webhooks are signed with that secret).
The verify token is ours (Meta echoes it back at subscription): nothing to ask the platform."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from connectors.channels import ChannelConfig
from connectors.facebook.directory import page_from_channel
from connectors.facebook.errors import parse_graph_error
from connectors.probe import CHECK_TIMEOUT, CheckResult


def _token_field(creds: dict[str, Any]) -> str:
    return "credentials.page_access_token" if creds.get("page_access_token") else "credentials.page_token"


class FacebookProbe:
    async def run(self, ch: ChannelConfig, creds: dict[str, Any]) -> list[CheckResult]:
        try:
            page = page_from_channel(ch, creds)
        except ValueError as exc:
            return [CheckResult("page_token", False, str(exc), _token_field(creds))]
        url = f"{page.graph_root}/me"
        params = {"fields": "id,name", "access_token": page.access_token}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as http:
            status, doc = await _get(http, url, params)
            if status != 200:
                return [CheckResult("page_token", False, _graph_problem(status, doc), _token_field(creds)),
                        CheckResult("app_secret", False, "not checked: the Page token does not work")]
            got = str(doc.get("id", ""))
            if got != page.page_id:
                first = CheckResult("page_token", False, f"the token is Page {got}'s, the inbox address is "
                                    f"{page.page_id}", _token_field(creds))
            else:
                first = CheckResult("page_token", True, f"Page {got} ({doc.get('name', '')})")
            proof = hmac.new(page.app_secret.encode(), page.access_token.encode(), hashlib.sha256).hexdigest()
            status, doc = await _get(http, url, {**params, "appsecret_proof": proof})
        if status == 200:
            return [first, CheckResult("app_secret", True, "Graph accepted the appsecret_proof")]
        return [first, CheckResult("app_secret", False, _graph_problem(status, doc), "credentials.app_secret")]


async def _get(http: aiohttp.ClientSession, url: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(status, JSON object) of a Graph GET; status 0 when Graph could not be reached (the
    error never carries the URL: it holds the token)."""
    try:
        async with http.get(url, params=params) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, {"unreachable": type(exc).__name__}
    if status != 200:
        return status, {"raw": raw}
    try:
        doc = json.loads(raw)
    except ValueError:
        return 502, {"raw": raw}
    return (200, doc) if isinstance(doc, dict) else (502, {"raw": raw})


def _graph_problem(status: int, doc: dict[str, Any]) -> str:
    if status == 0:
        return f"Graph API unreachable: {doc.get('unreachable')}"
    return parse_graph_error(status, doc.get("raw", b"")).describe()
