"""Each channel kind's schema (connectors/schemas.py): a valid inbox passes; an unknown key,
a missing required field, a wrong type and a malformed URL / address are refused with the
field named."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.schemas import SchemaError, check
from gateway.core.domain import Channel

UC = "UC" + "a" * 22
VALID: dict[Channel, tuple[dict[str, Any], dict[str, Any]]] = {
    Channel.FACEBOOK: ({"address": "555", "api_base": "http://127.0.0.1:9999", "graph_version": "v23.0"},
                       {"page_access_token": "tok", "app_secret": "s", "verify_token": "v"}),
    Channel.ZALO: ({"address": "123", "app_id": "42", "api_base": "https://openapi.zalo.me"},
                   {"oa_secret_key": "k", "app_secret_key": "a", "refresh_token": "r", "expires_at": 0}),
    Channel.YOUTUBE: ({"address": UC, "video_ids": ["abcdefghijk"], "poll_interval": 30, "max_results": 50,
                       "token_url": "https://oauth2.googleapis.com/token"},
                      {"client_id": "c", "client_secret": "s", "refresh_token": "r"}),
    Channel.EMAIL: ({"address": "cs@shop.vn", "smtp_host": "smtp.shop.vn", "smtp_port": 587,
                     "smtp_security": "starttls", "imap_host": "imap.shop.vn", "imap_port": 993},
                    {"username": "u", "password": "p"}),
    Channel.COMMENTS: ({}, {}),
}

# (kind, section, key, value or None to delete, expected field, words in the problem)
UNKNOWN = [(k, "settings", "adress", "x", "settings.adress", "unknown key") for k in VALID] + [
    (k, "credentials", "pasword", "x", "credentials.pasword", "unknown key") for k in VALID]
MISSING = [
    (Channel.FACEBOOK, "settings", "address", None, "settings.address", "required"),
    (Channel.FACEBOOK, "credentials", "app_secret", None, "credentials.app_secret", "required"),
    (Channel.FACEBOOK, "credentials", "page_access_token", None, "credentials.page_access_token", "required"),
    (Channel.ZALO, "settings", "app_id", None, "settings.app_id", "required"),
    (Channel.ZALO, "settings", "address", None, "settings.address", "required"),
    (Channel.ZALO, "credentials", "refresh_token", None, "credentials.refresh_token", "required"),
    (Channel.YOUTUBE, "credentials", "client_secret", None, "credentials.client_secret", "required"),
    (Channel.EMAIL, "settings", "address", None, "settings.address", "required"),
]
WRONG_TYPE = [
    (Channel.FACEBOOK, "credentials", "app_secret", 5, "credentials.app_secret", "string"),
    (Channel.ZALO, "credentials", "expires_at", "soon", "credentials.expires_at", "number"),
    (Channel.YOUTUBE, "settings", "poll_interval", "60", "settings.poll_interval", "number"),
    (Channel.YOUTUBE, "settings", "max_results", 5.5, "settings.max_results", "integer"),
    (Channel.YOUTUBE, "settings", "video_ids", "abcdefghijk", "settings.video_ids", "list"),
    (Channel.EMAIL, "settings", "smtp_port", "abc", "settings.smtp_port", "integer"),
    (Channel.EMAIL, "settings", "smtp_port", True, "settings.smtp_port", "integer"),
]
MALFORMED = [
    (Channel.FACEBOOK, "settings", "api_base", "graph.facebook.com", "settings.api_base", "URL"),
    (Channel.FACEBOOK, "settings", "address", "my page", "settings.address", "Page id"),
    (Channel.FACEBOOK, "settings", "graph_version", "23", "settings.graph_version", "version"),
    (Channel.ZALO, "settings", "oauth_base", "ftp://oauth.zaloapp.com", "settings.oauth_base", "URL"),
    (Channel.YOUTUBE, "settings", "address", "mychannel", "settings.address", "channel id"),
    (Channel.YOUTUBE, "settings", "token_url", "https://", "settings.token_url", "URL"),
    (Channel.YOUTUBE, "settings", "max_results", 500, "settings.max_results", "between"),
    (Channel.EMAIL, "settings", "address", "not-an-address", "settings.address", "email address"),
    (Channel.EMAIL, "settings", "smtp_port", 70000, "settings.smtp_port", "between"),
    (Channel.EMAIL, "settings", "smtp_security", "ssl", "settings.smtp_security", "one of"),
    (Channel.EMAIL, "settings", "smtp_host", "smtp host", "settings.smtp_host", "host"),
    (Channel.EMAIL, "credentials", "oauth2_token_url", "token", "credentials.oauth2_token_url", "URL"),
]


@pytest.mark.parametrize("kind", list(VALID))
def test_valid_inbox_passes(kind: Channel) -> None:
    check(kind, *VALID[kind])


@pytest.mark.parametrize(("kind", "section", "key", "value", "field", "words"),
                         UNKNOWN + MISSING + WRONG_TYPE + MALFORMED)
def test_refusal_names_the_field(kind: Channel, section: str, key: str, value: Any, field: str, words: str) -> None:
    settings, creds = (dict(d) for d in VALID[kind])
    target = settings if section == "settings" else creds
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value
    with pytest.raises(SchemaError) as info:
        check(kind, settings, creds)
    assert info.value.field == field and words in str(info.value) and field in str(info.value)


def test_issue_examples_are_refused() -> None:
    """The inboxes issue 33 found accepted."""
    cases: list[tuple[Channel, dict[str, Any], dict[str, Any], str]] = [
        (Channel.FACEBOOK, {"adress": "555"}, {"page_acess_token": "t"}, "settings.adress"),
        (Channel.ZALO, {"address": "1"}, {"oa_secret_key": "k", "app_secret_key": "a", "refresh_token": "r"},
         "settings.app_id"),
        (Channel.EMAIL, {"address": "not-an-address", "smtp_port": "abc"}, {}, "settings.address"),
        (Channel.YOUTUBE, {}, {}, "settings.address"),
    ]
    for kind, settings, creds, field in cases:
        with pytest.raises(SchemaError) as info:
            check(kind, settings, creds)
        assert info.value.field == field, (kind, str(info.value))


def test_zalo_app_id_in_credentials_and_email_oauth2_all_or_none() -> None:
    check(Channel.ZALO, {"oa_id": "1"}, {"oa_secret_key": "k", "app_secret_key": "a", "refresh_token": "r",
                                         "app_id": "9"})
    with pytest.raises(SchemaError, match=r"credentials\.oauth2_client_id: is required with oauth2_token_url"):
        check(Channel.EMAIL, {"address": "a@b.vn"}, {"oauth2_token_url": "https://t.example/token"})


def test_widget_is_no_connector_kind() -> None:
    with pytest.raises(ValueError, match="not a connector channel"):
        check(Channel.WIDGET, {}, {})
