"""`channel test` (connectors/probe.py) of every kind against the fake platforms, in their
real wire formats: each check passing, and each way it fails, named, with the field to fix,
and never a secret in the report."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.channels import ChannelConfig, ChannelStore
from connectors.probe import ProbeReport
from connectors.probes import channel_probe
from gateway.core.domain import Channel
from gateway.security.crypto import SecretBox
from tests.connectors.facebook.fake_graph import FakeGraph
from tests.connectors.imap_xoauth2 import token_endpoint, xoauth2_imap
from tests.connectors.smtp_sink import PasswordRelay, XOAuth2Relay, smtp_sink
from tests.connectors.test_email_imap import PASSWORD, USER, imap_port  # noqa: F401 - the pymap fixture
from tests.connectors.youtube.fake_youtube import FakeYouTube
from tests.connectors.zalo import fake_zalo as fz
from tests.contract.repository_backends import open_nodes

PAGE, OTHER_PAGE, TOKEN, OTHER_TOKEN, APP_SECRET = "555", "777", "EAAG-page-token", "EAAG-other-token", "s3cret-app"


@dataclass
class Probe:
    channels: ChannelStore
    db: Any
    tenant_id: str

    async def add(self, kind: Channel, settings: dict[str, Any], creds: dict[str, Any]) -> ChannelConfig:
        return await self.channels.add(tenant_id=self.tenant_id, kind=kind, name="x", credentials=creds,
                                       settings=settings)

    async def test(self, ch: ChannelConfig) -> ProbeReport:
        report = await channel_probe(self.channels, self.db, "node-1", time.time).test(ch)
        text = json.dumps(report.as_dict())
        for v in (await self.channels.credentials(ch)).values():
            assert not (isinstance(v, str) and len(v) >= 4 and v in text), f"a secret in the report: {text}"
        return report


@pytest.fixture
async def probe(tmp_path: Path) -> AsyncIterator[Probe]:
    async with open_nodes("sqlite", tmp_path) as nodes:
        yield Probe(ChannelStore(nodes.db, SecretBox(b"\x07" * 32), time.time), nodes.db, await nodes.tenant())


def outcome(report: ProbeReport) -> list[tuple[str, bool, str | None]]:
    return [(c.check, c.ok, c.field) for c in report.checks]


# --- Facebook -----------------------------------------------------------------------------

async def test_facebook_token_and_app_secret(probe: Probe) -> None:
    async with FakeGraph({TOKEN: PAGE, OTHER_TOKEN: OTHER_PAGE}) as graph:
        graph.app_secret = APP_SECRET

        async def fb(token: str, secret: str, address: str = PAGE) -> ProbeReport:
            ch = await probe.add(Channel.FACEBOOK, {"address": address, "api_base": graph.url},
                                 {"page_access_token": token, "app_secret": secret, "verify_token": "v"})
            try:
                return await probe.test(ch)
            finally:
                await probe.channels.remove(probe.tenant_id, ch.id)

        good = await fb(TOKEN, APP_SECRET)
        assert good.passed and outcome(good) == [("page_token", True, None), ("app_secret", True, None)]
        assert good.checks[0].detail.startswith(f"Page {PAGE}")
        [me, proof] = [c for c in graph.calls if c.path.endswith("/me")][-2:]
        assert "appsecret_proof" not in me.query and "appsecret_proof" in proof.query

        wrong_secret = await fb(TOKEN, "wrong-secret")
        assert outcome(wrong_secret) == [("page_token", True, None), ("app_secret", False, "credentials.app_secret")]
        assert "Invalid appsecret_proof" in wrong_secret.checks[1].detail

        bad_token = await fb("EAAG-nonsense", APP_SECRET)
        assert outcome(bad_token) == [("page_token", False, "credentials.page_access_token"),
                                      ("app_secret", False, None)]
        assert "code 190" in bad_token.checks[0].detail

        graph.expired.add(TOKEN)
        expired = await fb(TOKEN, APP_SECRET)
        assert outcome(expired)[0] == ("page_token", False, "credentials.page_access_token")
        assert "190/463" in expired.checks[0].detail
        graph.expired.clear()

        other_page = await fb(OTHER_TOKEN, APP_SECRET)
        assert outcome(other_page)[0] == ("page_token", False, "credentials.page_access_token")
        assert f"Page {OTHER_PAGE}'s" in other_page.checks[0].detail

        graph.fail_next(1, "server")
        down = await fb(TOKEN, APP_SECRET)
        assert outcome(down)[0][:2] == ("page_token", False) and "HTTP 500" in down.checks[0].detail

    gone = await fb(TOKEN, APP_SECRET)  # the fake is closed: nothing listens there any more
    assert outcome(gone)[0][:2] == ("page_token", False) and "unreachable" in gone.checks[0].detail


# --- Zalo ---------------------------------------------------------------------------------

async def test_zalo_refresh_and_profile(probe: Probe) -> None:
    async with fz.run_fake_zalo() as fake:
        async def zalo(address: str = fz.OA_ID, app_secret: str = fz.APP_SECRET,
                       refresh_token: str | None = None) -> tuple[ChannelConfig, ProbeReport]:
            at, rt, exp = fake.issue()
            ch = await probe.add(Channel.ZALO, {"address": address, "app_id": fz.APP_ID, "api_base": fake.url,
                                                "oauth_base": fake.url},
                                 {"oa_secret_key": fz.OA_SECRET, "app_secret_key": app_secret, "access_token": at,
                                  "refresh_token": refresh_token or rt, "expires_at": exp})
            return ch, await probe.test(ch)

        ch, good = await zalo()
        assert good.passed and outcome(good) == [("oauth_refresh", True, None), ("oa_profile", True, None)]
        stored = await probe.channels.credentials(ch)  # the rotated pair is stored, and is Zalo's valid one
        assert stored["refresh_token"] in fake.refresh_tokens and stored["access_token"] in fake.access_tokens
        assert fake.refresh_calls == 1
        await probe.channels.remove(probe.tenant_id, ch.id)

        ch, wrong_secret = await zalo(app_secret="wrong")
        assert outcome(wrong_secret) == [("oauth_refresh", False, "credentials.app_secret_key"),
                                         ("oa_profile", False, None)]
        await probe.channels.remove(probe.tenant_id, ch.id)

        ch, spent = await zalo(refresh_token="RT-spent")
        assert outcome(spent)[0] == ("oauth_refresh", False, "credentials.refresh_token")
        await probe.channels.remove(probe.tenant_id, ch.id)

        fake.oa_id = "4000000000000000999"
        ch, other_oa = await zalo()
        assert outcome(other_oa) == [("oauth_refresh", True, None), ("oa_profile", False, "settings.address")]


# --- YouTube ------------------------------------------------------------------------------

async def test_youtube_refresh(probe: Probe) -> None:
    fake = FakeYouTube()
    await fake.start()
    try:
        async def yt(**creds: str) -> ProbeReport:
            ch = await probe.add(Channel.YOUTUBE, {"address": "UC" + "a" * 22, "token_url": fake.token_url},
                                 {"client_id": fake.client_id, "client_secret": fake.client_secret,
                                  "refresh_token": fake.refresh_token, **creds})
            try:
                return await probe.test(ch)
            finally:
                await probe.channels.remove(probe.tenant_id, ch.id)

        assert outcome(await yt()) == [("oauth_refresh", True, None)]
        assert outcome(await yt(client_secret="nope")) == [("oauth_refresh", False, "credentials.client_secret")]
        revoked = await yt(refresh_token="1//revoked")
        assert outcome(revoked) == [("oauth_refresh", False, "credentials.refresh_token")]
        assert "invalid_grant" in revoked.checks[0].detail
    finally:
        await fake.stop()


# --- Email --------------------------------------------------------------------------------

async def test_email_imap_and_smtp_password_logins(probe: Probe, imap_port: int) -> None:  # noqa: F811
    relay = PasswordRelay(USER, PASSWORD)
    async with smtp_sink(relay):
        async def mail(password: str, smtp_port: int, *, imap: bool = True) -> ProbeReport:
            settings: dict[str, Any] = {"address": "cs@shop.test", "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
                                        "smtp_security": "none"}
            if imap:
                settings.update(imap_host="127.0.0.1", imap_port=imap_port, imap_security="none")
            ch = await probe.add(Channel.EMAIL, settings, {"username": USER, "password": password})
            try:
                return await probe.test(ch)
            finally:
                await probe.channels.remove(probe.tenant_id, ch.id)

        good = await mail(PASSWORD, relay.port)
        assert good.passed and outcome(good) == [("imap_login", True, None), ("smtp_login", True, None)]
        assert relay.logins == [USER] and relay.received == []  # logged in, sent nothing
        wrong = await mail("wrong password", relay.port)
        assert outcome(wrong) == [("imap_login", False, "credentials.password"),
                                  ("smtp_login", False, "credentials.password")]
        assert "535" in wrong.checks[1].detail
        closed = await mail(PASSWORD, 9, imap=False)  # nothing listens on the discard port
        assert outcome(closed) == [("smtp_login", False, "settings.smtp_host")]


async def test_email_xoauth2_logins(probe: Probe) -> None:
    user = "support@shop.test"
    relay = XOAuth2Relay(user)
    async with (token_endpoint("cid", "csecret", "1//refresh") as ep, xoauth2_imap(user) as imap, smtp_sink(relay)):
        async def mail(refresh_token: str) -> ProbeReport:
            ch = await probe.add(Channel.EMAIL, {
                "address": user, "smtp_host": "127.0.0.1", "smtp_port": relay.port, "smtp_security": "none",
                "imap_host": "127.0.0.1", "imap_port": imap.port, "imap_security": "none"}, {
                "username": user, "oauth2_token_url": ep.url, "oauth2_client_id": "cid",
                "oauth2_client_secret": "csecret", "oauth2_refresh_token": refresh_token})
            try:
                return await probe.test(ch)
            finally:
                await probe.channels.remove(probe.tenant_id, ch.id)

        imap.tokens.add("ya29.token-1")
        relay.tokens.add("ya29.token-1")
        good = await mail("1//refresh")
        assert outcome(good) == [("oauth2_token", True, None), ("imap_login", True, None), ("smtp_login", True, None)]
        assert imap.tried == ["ya29.token-1"] and relay.tried == ["ya29.token-1"]
        imap.tokens.clear()  # the servers stop taking the token the endpoint gives
        relay.tokens.clear()
        refused = await mail("1//refresh")
        assert outcome(refused) == [("oauth2_token", True, None), ("imap_login", False, None),
                                    ("smtp_login", False, None)]
        revoked = await mail("1//revoked")
        assert outcome(revoked) == [("oauth2_token", False, "credentials.oauth2_refresh_token"),
                                    ("imap_login", False, None), ("smtp_login", False, None)]


async def test_comments_have_nothing_to_check(probe: Probe) -> None:
    ch = await probe.add(Channel.COMMENTS, {}, {})
    report = await probe.test(ch)
    assert report.passed and report.checks == ()
