"""A schema per channel kind: which `settings` and `credentials` keys an inbox may have,
which are required, their types and formats (checked on `channel add` and `update`, in the
CLI and the admin API, before anything is stored).

`check(kind, settings, credentials)` raises `SchemaError` naming the first offending field
as ``settings.<key>`` or ``credentials.<key>``: an unknown key, a missing required field, a
wrong type (a string where a number is wanted, ...) or a malformed value (a URL that is not
http(s) with a host, an address that is not an email address, a port outside 1..65535).
The connectors read the same keys (connectors/*/ and docs/connectors.md); a key they do not
read is refused here, so a misspelt key is an error at once and not a silent default later.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.core.domain import Channel

_EMAIL_RE = re.compile(r"^[^@\s<>\"(),;:]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[?[0-9A-Fa-f:.]+\]?$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_GRAPH_VERSION_RE = re.compile(r"^v\d{1,3}\.\d{1,3}$")
_YT_CHANNEL_RE = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
_YT_VIDEO_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
_DIGITS_RE = re.compile(r"^\d{1,30}$")
SECURITY = ("starttls", "tls", "none")


class SchemaError(ValueError):
    """An inbox definition its kind's schema refuses; `field` is ``settings.<key>`` or
    ``credentials.<key>`` (or the group's first key when one of several is required)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


Check = Callable[[Any], str | None]  # None when the value is acceptable, else the problem


def text(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be a string, got {type(v).__name__}"
    if not v.strip():
        return "must not be empty"
    return None if len(v) <= 4096 else "must be at most 4096 characters"


def pattern(rx: re.Pattern[str], what: str) -> Check:
    def check(v: Any) -> str | None:
        return text(v) or (None if rx.match(v) else f"must be {what}, got {v!r}")
    return check


def url(v: Any) -> str | None:
    """An absolute http(s) URL with a host."""
    if (bad := text(v)) is not None:
        return bad
    try:
        parts = urllib.parse.urlsplit(v)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return f"must be an http(s) URL, got {v!r}"
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in v):
        return f"must be an http(s) URL, got {v!r}"
    return None


def email_address(v: Any) -> str | None:
    return text(v) or (None if _EMAIL_RE.match(v.strip()) else f"must be an email address, got {v!r}")


def hostname(v: Any) -> str | None:
    return text(v) or (None if _HOST_RE.match(v) else f"must be a host name or IP address, got {v!r}")


def number(lo: float, hi: float, *, integer: bool = False) -> Check:
    """A JSON number in lo..hi (an integer when `integer`); a numeric string is still refused."""
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return f"must be {'an integer' if integer else 'a number'}, got {type(v).__name__} {v!r}"
        if isinstance(v, float) and not math.isfinite(v):
            return "must be finite"
        return None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}, got {v!r}"
    return check


def one_of(*values: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in values else f"must be one of {', '.join(values)}, got {v!r}"
    return check


def list_of(item: Check, max_items: int = 50) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return f"must be a list, got {type(v).__name__}"
        if len(v) > max_items:
            return f"must have at most {max_items} items"
        for i, x in enumerate(v):
            if (bad := item(x)) is not None:
                return f"item {i} {bad}"
        return None
    return check


PORT = number(1, 65535, integer=True)


@dataclass(frozen=True, slots=True)
class Section:
    """The keys of `settings` or `credentials`: each key's check, the required keys, groups
    of which at least one key is required, and groups whose keys come all or none."""

    fields: Mapping[str, Check]
    required: tuple[str, ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()
    all_or_none: tuple[tuple[str, ...], ...] = ()

    def check(self, where: str, values: Mapping[str, Any]) -> None:
        for key in values:
            if key not in self.fields:
                raise SchemaError(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(self.fields))})")
        for key, value in values.items():
            if value is None:
                continue
            problem = self.fields[key](value)
            if problem is not None:
                raise SchemaError(f"{where}.{key}", problem)
        for key in self.required:
            if values.get(key) in (None, ""):
                raise SchemaError(f"{where}.{key}", "is required")
        for group in self.any_of:
            if all(values.get(k) in (None, "") for k in group):
                raise SchemaError(f"{where}.{group[0]}", f"is required (or one of {', '.join(group[1:])})")
        for group in self.all_or_none:
            given = [k for k in group if values.get(k) not in (None, "")]
            if given and len(given) < len(group):
                missing = next(k for k in group if k not in given)
                raise SchemaError(f"{where}.{missing}", f"is required with {', '.join(given)}")


@dataclass(frozen=True, slots=True)
class ChannelSchema:
    """`either`: keys required in settings or in credentials (settings key, credentials key)."""

    settings: Section
    credentials: Section
    either: tuple[tuple[str, str], ...] = ()

    def check(self, settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> None:
        self.settings.check("settings", settings)
        self.credentials.check("credentials", credentials)
        for in_settings, in_credentials in self.either:
            if settings.get(in_settings) in (None, "") and credentials.get(in_credentials) in (None, ""):
                raise SchemaError(f"settings.{in_settings}", f"is required (or credentials.{in_credentials})")


_SECONDS = number(0, 7 * 86400)

SCHEMAS: Mapping[Channel, ChannelSchema] = MappingProxyType({
    Channel.FACEBOOK: ChannelSchema(
        Section({"address": pattern(_DIGITS_RE, "a numeric Page id"), "api_base": url,
                 "graph_version": pattern(_GRAPH_VERSION_RE, "a Graph API version like v23.0")},
                required=("address",)),
        Section({"page_access_token": text, "page_token": text, "app_secret": text, "verify_token": text},
                required=("app_secret", "verify_token"), any_of=(("page_access_token", "page_token"),)),
    ),
    Channel.ZALO: ChannelSchema(
        Section({"address": pattern(_DIGITS_RE, "a numeric OA id"), "oa_id": pattern(_DIGITS_RE, "a numeric OA id"),
                 "app_id": pattern(_DIGITS_RE, "a numeric Zalo app id"), "api_base": url, "oauth_base": url},
                any_of=(("address", "oa_id"),)),
        Section({"oa_secret_key": text, "app_secret_key": text, "access_token": text, "refresh_token": text,
                 "expires_at": number(0, 1e11), "app_id": pattern(_DIGITS_RE, "a numeric Zalo app id")},
                required=("oa_secret_key", "app_secret_key", "refresh_token")),
        either=(("app_id", "app_id"),),
    ),
    Channel.YOUTUBE: ChannelSchema(
        Section({"address": pattern(_YT_CHANNEL_RE, "a YouTube channel id (UC + 22 characters)"),
                 "channel_id": pattern(_YT_CHANNEL_RE, "a YouTube channel id (UC + 22 characters)"),
                 "video_ids": list_of(pattern(_YT_VIDEO_RE, "a YouTube video id (11 characters)")),
                 "own_channel_id": pattern(_YT_CHANNEL_RE, "a YouTube channel id (UC + 22 characters)"),
                 "api_base": url, "token_url": url,
                 "poll_interval": number(1, 86400), "initial_lookback": _SECONDS, "overlap": number(0, 86400),
                 "quota_backoff": _SECONDS, "source_recheck": _SECONDS,
                 "max_results": number(1, 100, integer=True), "max_pages_per_poll": number(1, 1000, integer=True),
                 "reply_sweep_every": number(0, 1000, integer=True),
                 "max_tracked_threads": number(0, 10000, integer=True)},
                any_of=(("address", "channel_id", "video_ids"),)),
        Section({"client_id": text, "client_secret": text, "refresh_token": text},
                required=("client_id", "client_secret", "refresh_token")),
    ),
    Channel.EMAIL: ChannelSchema(
        Section({"address": email_address, "smtp_host": hostname, "smtp_port": PORT,
                 "smtp_security": one_of(*SECURITY), "from_name": text, "domain": hostname,
                 "reply_domain": hostname, "imap_host": hostname, "imap_port": PORT,
                 "imap_security": one_of(*SECURITY), "imap_mailbox": text},
                required=("address",)),
        Section({"username": text, "password": text, "imap_username": text, "imap_password": text,
                 "oauth2_token_url": url, "oauth2_client_id": text, "oauth2_client_secret": text,
                 "oauth2_refresh_token": text},
                all_or_none=(("oauth2_token_url", "oauth2_client_id", "oauth2_client_secret",
                              "oauth2_refresh_token"),)),
    ),
    Channel.COMMENTS: ChannelSchema(Section({}), Section({})),
})


def check(kind: Channel, settings: Mapping[str, Any], credentials: Mapping[str, Any]) -> None:
    """Raise `SchemaError` unless `settings` and `credentials` fit `kind`'s schema; ValueError
    for a kind that is no connector channel."""
    schema = SCHEMAS.get(Channel(kind))
    if schema is None:
        raise ValueError(f"{Channel(kind).value} is not a connector channel")
    schema.check(settings, credentials)
