"""`channel test` of an email inbox (connectors/probe.py), with the settings the connector
uses (connectors/email/connector.py, imap.py):

* `oauth2_token`: when the credentials have an OAuth 2.0 client (XOAUTH2 logins), the
  refresh-token grant at `oauth2_token_url` (a rotated refresh token is stored);
* `imap_login`: when the inbox has `imap_host`: connect (TLS as `imap_security`), log in
  (password, or XOAUTH2 with the token) and select `imap_mailbox`;
* `smtp_login`: connect to `smtp_host:smtp_port` (TLS as `smtp_security`) and, when the
  inbox has a username or an OAuth 2.0 client, log in; then QUIT (nothing is sent).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import aiosmtplib

from connectors.channels import ChannelConfig
from connectors.email.imap import ImapAccount, ImapError, ImapSession, oauth2_client
from connectors.probe import CHECK_TIMEOUT, CheckResult, refresh_check

StoreRefreshToken = Callable[[ChannelConfig, str], Awaitable[None]]


class EmailProbe:
    def __init__(self, clock: Callable[[], float], store_refresh_token: StoreRefreshToken) -> None:
        self._clock = clock
        self._store = store_refresh_token

    async def run(self, ch: ChannelConfig, creds: dict[str, Any]) -> list[CheckResult]:
        out: list[CheckResult] = []
        try:
            client = oauth2_client(creds)
        except ValueError as exc:
            return [CheckResult("oauth2_token", False, str(exc), "credentials.oauth2_token_url")]
        token: str | None = None
        if client is not None:
            async def rotated(refresh_token: str) -> None:
                await self._store(ch, refresh_token)

            async with aiohttp.ClientSession() as http:
                result, token = await refresh_check(http, client.token_url, client.client_id, client.client_secret,
                                                    client.refresh_token, self._clock, name="oauth2_token",
                                                    prefix="oauth2_", on_rotate=rotated)
            out.append(result)
        if ch.settings.get("imap_host"):
            out.append(await self._imap(ch, creds, client is not None, token))
        out.append(await self._smtp(ch, creds, client is not None, token))
        return out

    @staticmethod
    async def _imap(ch: ChannelConfig, creds: dict[str, Any], oauth: bool, token: str | None) -> CheckResult:
        password_field = "credentials.imap_password" if creds.get("imap_password") else "credentials.password"
        try:
            account = ImapAccount.of(ch, creds)
        except ValueError as exc:
            return CheckResult("imap_login", False, str(exc), "credentials.imap_username")
        assert account is not None
        if oauth:
            if not token:
                return CheckResult("imap_login", False, "not checked: no OAuth 2.0 access token")
            account = dataclasses.replace(account, bearer=token)

        def login() -> None:
            with ImapSession(account, CHECK_TIMEOUT):
                pass

        try:
            await asyncio.to_thread(login)
        except ImapError as exc:
            return CheckResult("imap_login", False, f"{account.host}:{account.port}: {exc}",
                               None if oauth else password_field)
        return CheckResult("imap_login", True, f"logged in to {account.host}:{account.port} as {account.username},"
                           f" selected {account.mailbox}")

    @staticmethod
    async def _smtp(ch: ChannelConfig, creds: dict[str, Any], oauth: bool, token: str | None) -> CheckResult:
        s = ch.settings
        host, port = str(s.get("smtp_host", "localhost")), int(s.get("smtp_port", 587))
        security = str(s.get("smtp_security", "starttls"))
        username = creds.get("username") or None
        login: dict[str, Any] = {}
        if oauth:
            if not token:
                return CheckResult("smtp_login", False, "not checked: no OAuth 2.0 access token")

            async def bearer() -> str:
                assert token is not None
                return token

            login = {"username": username, "oauth_token_generator": bearer}
        elif username:
            login = {"username": username, "password": creds.get("password") or ""}
        smtp = aiosmtplib.SMTP(hostname=host, port=port, use_tls=security == "tls",
                               start_tls=security == "starttls", timeout=CHECK_TIMEOUT, **login)
        try:
            await smtp.connect()
            await smtp.quit()
        except aiosmtplib.SMTPAuthenticationError as exc:
            return CheckResult("smtp_login", False, f"{host}:{port}: SMTP {exc.code}: {exc.message}",
                               None if oauth else "credentials.password")
        except aiosmtplib.SMTPResponseException as exc:
            return CheckResult("smtp_login", False, f"{host}:{port}: SMTP {exc.code}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return CheckResult("smtp_login", False, f"{host}:{port}: {type(exc).__name__}: {exc}", "settings.smtp_host")
        finally:
            smtp.close()
        what = f"logged in as {username}" if login else "connected (no login configured)"
        return CheckResult("smtp_login", True, f"{host}:{port}: {what}")
