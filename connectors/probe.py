"""`channel test`: check an inbox's credentials against its platform (CLI `python -m gateway
channel test`, REST `POST /api/v1/channels/{id}/test`).

Each kind has its checks (connectors/<kind>/probe.py), each a call the platform answers
with the stored credentials, made against the inbox's own `api_base` / `token_url` /
hosts (so a test inbox points them at a fake):

| kind      | checks (in order)                                                          |
|-----------|-----------------------------------------------------------------------------|
| facebook  | `page_token` (Graph `GET /me` with the Page token; its id is the address),   |
|           | `app_secret` (the same call with `appsecret_proof` made with the App Secret) |
| zalo      | `oauth_refresh` (OAuth v4 refresh: app id, App Secret, refresh token; the    |
|           | rotated pair is stored at once, one refresh at a time across nodes),        |
|           | `oa_profile` (`GET /v2.0/oa/getoa` with the new access token; its `oa_id` is |
|           | the address)                                                                |
| youtube   | `oauth_refresh` (refresh-token grant at `token_url`)                         |
| email     | `oauth2_token` (when the inbox logs in with XOAUTH2), `imap_login` (when it  |
|           | has `imap_host`: login and select the mailbox), `smtp_login` (connect, TLS   |
|           | as set, log in when it has a username or OAuth 2.0 client)                  |
| comments  | none (no platform)                                                           |

A check never raises: it ends as a `CheckResult` that names it, says whether it passed,
what the platform answered (`detail`) and, on failure, which field to fix (`field`). No
secret ever appears in a result: each `detail` is built from the platform's error codes and
messages, and any credential value that would still be in it is masked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from connectors.channels import ChannelConfig
from connectors.oauth import AuthError, TokenProvider

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 15.0  # s per platform call


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of an inbox: `check` names it; `field` (``credentials.<key>`` /
    ``settings.<key>``) is what to fix when it failed, None when unknown or it passed."""

    check: str
    ok: bool
    detail: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "ok": self.ok, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class ProbeReport:
    channel_id: str
    kind: str
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"channel_id": self.channel_id, "kind": self.kind, "passed": self.passed,
                "checks": [c.as_dict() for c in self.checks]}


class KindProbe(Protocol):
    """The checks of one kind: `run` never raises for what the platform answers."""

    async def run(self, ch: ChannelConfig, creds: dict[str, Any]) -> list[CheckResult]: ...


def masked(text: str, creds: Mapping[str, Any]) -> str:
    """`text` with every credential value of 4+ characters replaced by ``***``."""
    for v in creds.values():
        if isinstance(v, str) and len(v) >= 4 and v in text:
            text = text.replace(v, "***")
    return text[:500]


def oauth_problem_field(message: str, prefix: str = "") -> str | None:
    """The credential an OAuth 2.0 token endpoint's refusal points at."""
    if "invalid_client" in message or "unauthorized_client" in message:
        return f"credentials.{prefix}client_secret"
    if "invalid_grant" in message:
        return f"credentials.{prefix}refresh_token"
    return None


async def refresh_check(session: aiohttp.ClientSession, token_url: str, client_id: str, client_secret: str,
                        refresh_token: str, clock: Callable[[], float], *, name: str = "oauth_refresh",
                        prefix: str = "", on_rotate: Callable[[str], Awaitable[None]] | None = None,
                        ) -> tuple[CheckResult, str]:
    """One refresh-token grant: the check's result and the access token ("" when refused)."""
    async def own() -> aiohttp.ClientSession:
        return session

    provider = TokenProvider(session=own, token_url=token_url, client_id=client_id, client_secret=client_secret,
                             refresh_token=refresh_token, clock=clock, timeout=CHECK_TIMEOUT, on_rotate=on_rotate)
    try:
        token = await provider.token()
    except AuthError as exc:
        return CheckResult(name, False, str(exc), oauth_problem_field(str(exc), prefix)), ""
    return CheckResult(name, True, "the token endpoint issued an access token"), token


class ChannelProbe:
    """Runs the checks of an inbox's kind (`probes`: kind value → `KindProbe`)."""

    def __init__(self, probes: Mapping[str, KindProbe],
                 credentials: Callable[[ChannelConfig], Awaitable[dict[str, Any]]]) -> None:
        self._probes = probes
        self._credentials = credentials

    async def test(self, ch: ChannelConfig) -> ProbeReport:
        creds = await self._credentials(ch)
        probe = self._probes.get(ch.kind.value)
        if probe is None:
            return ProbeReport(ch.id, ch.kind.value, ())
        try:
            results = await probe.run(ch, creds)
        except Exception as exc:  # a probe bug: reported, never the secret
            log.exception("channel test of %s crashed", ch.id)
            results = [CheckResult("probe", False, f"{type(exc).__name__}: {exc}")]
        return ProbeReport(ch.id, ch.kind.value, tuple(
            CheckResult(r.check, r.ok, masked(r.detail, creds), r.field) for r in results))
