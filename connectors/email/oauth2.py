"""OAuth 2.0 access tokens for the email inboxes that log in with XOAUTH2 (Google Workspace,
Microsoft 365), to IMAP and to the SMTP relay: one `TokenProvider` per inbox, refreshed from the inbox's refresh token
before it expires; a token the server refused is dropped, so the next login refreshes. A
refresh token the endpoint rotates (Microsoft does at every refresh, and the old one expires
90 days after it was issued) is written into the inbox's sealed credentials
(`store_refresh_token`) before it is used. A refresh token in the credentials that this
process has not seen (an operator's new consent) starts a new provider."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import aiohttp

from connectors.channels import ChannelConfig
from connectors.email.imap import ImapAccount, OAuth2Client
from connectors.oauth import TokenProvider


class MailTokens:
    def __init__(self, clock: Callable[[], float],
                 store_refresh_token: Callable[[ChannelConfig, str], Awaitable[None]], *,
                 timeout: float = 30.0) -> None:
        self._clock = clock
        self._store = store_refresh_token
        self._timeout = timeout
        # inbox → (its token endpoint and client, their provider, the refresh tokens it has used)
        self._providers: dict[str, tuple[tuple[str, str, str], TokenProvider, set[str]]] = {}
        self._http: aiohttp.ClientSession | None = None

    async def authorized(self, ch: ChannelConfig, account: ImapAccount) -> ImapAccount:
        """`account` with a valid access token when it logs in with XOAUTH2 (raises
        `connectors.oauth.AuthError` when none can be had), else as it is."""
        if account.oauth2 is None:
            return account
        return dataclasses.replace(account, bearer=await self.token(ch, account.oauth2))

    def refused(self, ch: ChannelConfig, account: ImapAccount) -> None:
        """The server refused `account`'s login: a new token next time."""
        if account.bearer is not None:
            self.refused_token(ch, account.bearer)

    async def token(self, ch: ChannelConfig, client: OAuth2Client) -> str:
        """A valid access token of `ch` (raises `connectors.oauth.AuthError`)."""
        return await self._provider(ch, client).token()

    def refused_token(self, ch: ChannelConfig, token: str) -> None:
        """A server refused `token`: the next `token()` asks for a new one."""
        known = self._providers.get(ch.id)
        if known is not None:
            known[1].invalidate(token)

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def _provider(self, ch: ChannelConfig, client: OAuth2Client) -> TokenProvider:
        endpoint = (client.token_url, client.client_id, client.client_secret)
        known = self._providers.get(ch.id)
        if known is not None and known[0] == endpoint and client.refresh_token in known[2]:
            return known[1]
        used = {client.refresh_token}

        async def rotated(refresh_token: str) -> None:
            await self._store(ch, refresh_token)
            used.add(refresh_token)

        provider = TokenProvider(session=self._session, token_url=client.token_url, client_id=client.client_id,
                                 client_secret=client.client_secret, refresh_token=client.refresh_token,
                                 clock=self._clock, timeout=self._timeout, on_rotate=rotated)
        self._providers[ch.id] = (endpoint, provider, used)
        return provider

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http
