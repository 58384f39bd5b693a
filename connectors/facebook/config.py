"""Configuration of the Facebook connector.

One connected Facebook Page = one tenant inbox (`connectors.channels.ChannelConfig` of kind `facebook`):
``address`` = Page id; credentials ``{"page_access_token" (or "page_token"), "app_secret", "verify_token"}``;
optional settings ``{"api_base", "graph_version"}`` (tests point `api_base` at the local fake Graph API).
The App Secret / verify token belong to the Meta app that delivers the Page's webhooks; several Pages (of
several tenants) may share one app, or a tenant may bring its own app.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"
DEFAULT_WEBHOOK_PATH = "/webhooks/facebook"


@dataclass(frozen=True, slots=True)
class FacebookPage:
    """Everything needed for one connected Page (secrets never appear in repr)."""

    page_id: str
    tenant_id: str
    access_token: str
    app_secret: str
    verify_token: str
    channel_id: str | None = None
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL
    graph_version: str = DEFAULT_GRAPH_VERSION

    def __post_init__(self) -> None:
        for name in ("page_id", "tenant_id", "access_token", "app_secret", "verify_token"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required")

    def __repr__(self) -> str:
        return (
            f"FacebookPage(page_id={self.page_id!r}, tenant_id={self.tenant_id!r}, channel_id={self.channel_id!r}, "
            f"graph_base_url={self.graph_base_url!r}, graph_version={self.graph_version!r})"
        )

    @property
    def graph_root(self) -> str:
        return f"{self.graph_base_url.rstrip('/')}/{self.graph_version.strip('/')}"


@dataclass(frozen=True, slots=True)
class FacebookOptions:
    webhook_path: str = DEFAULT_WEBHOOK_PATH
    max_body_bytes: int = 1024 * 1024
    connect_timeout: float = 5.0
    total_timeout: float = 15.0
    rate_limit_retry_after: float = 60.0  # when Graph gives no estimate
    server_error_retry_after: float = 5.0

    def __post_init__(self) -> None:
        if self.max_body_bytes <= 0 or self.total_timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("limits and timeouts must be positive")
