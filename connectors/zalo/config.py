"""Typed configuration of the Zalo connector: connector-wide settings and one entry per OA."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_BASE = "https://openapi.zalo.me"
DEFAULT_OAUTH_BASE = "https://oauth.zaloapp.com"


@dataclass(frozen=True, slots=True)
class ZaloTokens:
    """OAuth state of one OA. Zalo rotates the refresh token on every refresh: persist both together."""

    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class ZaloAccount:
    """One Official Account connected by a tenant (one `connector_channels` inbox).

    `oa_secret_key` signs webhooks (the "OA Secret Key" of the Zalo app's webhook settings; it
    belongs to the app, so OAs under one app share it); `app_secret_key` is the App Secret
    sent as the `secret_key` header of OAuth calls. Webhooks of an app arrive at
    `<webhook_base>/<app_id>`.
    """

    tenant_id: str
    app_id: str
    oa_id: str
    oa_secret_key: str
    app_secret_key: str
    tokens: ZaloTokens
    channel_id: str | None = None
    api_base: str = DEFAULT_API_BASE
    oauth_base: str = DEFAULT_OAUTH_BASE


@dataclass(frozen=True, slots=True)
class ZaloSettings:
    webhook_base: str = "/webhooks/zalo"
    max_body_bytes: int = 256 * 1024
    # The signed `timestamp` is the event time; Zalo retries a failed delivery for ~2 h with the
    # original body, so the window is generous. Replays inside it are absorbed by msg_id dedup.
    max_event_age: float = 6 * 3600.0
    max_clock_skew: float = 300.0
    refresh_margin: float = 600.0  # refresh this many seconds before the access token expires
    refresh_retry: float = 60.0  # background retry delay after a failed refresh
    request_timeout: float = 15.0
