"""`channel test` of a YouTube inbox (connectors/probe.py): `oauth_refresh`, the
refresh-token grant at the inbox's `token_url` (default Google's) with its client id,
client secret and refresh token (Google does not rotate them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from connectors.channels import ChannelConfig
from connectors.probe import CheckResult, refresh_check
from connectors.youtube.config import DEFAULT_TOKEN_URL


class YouTubeProbe:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    async def run(self, ch: ChannelConfig, creds: dict[str, Any]) -> list[CheckResult]:
        async with aiohttp.ClientSession() as http:
            result, _ = await refresh_check(
                http, str(ch.settings.get("token_url") or DEFAULT_TOKEN_URL), str(creds.get("client_id") or ""),
                str(creds.get("client_secret") or ""), str(creds.get("refresh_token") or ""), self._clock)
        return [result]
