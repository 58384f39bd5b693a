from __future__ import annotations

import pytest

from connectors.channels import ChannelConfig
from connectors.youtube.service import config_from_inbox
from gateway.core.domain import Channel

CREDS = {"client_id": "cid", "client_secret": "sec", "refresh_token": "1//r"}


def inbox(address: str | None = "UCshop", **settings) -> ChannelConfig:
    return ChannelConfig(id="ch1", tenant_id="t1", kind=Channel.YOUTUBE, name="YT", address=address,
                         enabled=True, created_at=0.0, settings=settings)


def test_config_from_inbox_maps_settings_and_credentials() -> None:
    cfg = config_from_inbox(
        inbox(video_ids=["v1", "v2"], poll_interval=30, max_results=50, api_base="http://127.0.0.1:1/yt",
              quota_backoff=600), CREDS,
    )
    assert cfg.tenant_id == "t1" and cfg.inbox_id == "ch1"
    assert cfg.channel_id == "UCshop" and cfg.video_ids == ("v1", "v2")
    assert cfg.sources == ("channel:UCshop", "video:v1", "video:v2")
    assert cfg.poll_interval == 30.0 and cfg.max_results == 50 and cfg.quota_backoff == 600.0
    assert cfg.api_base == "http://127.0.0.1:1/yt" and cfg.own_channel_ids == {"UCshop"}
    assert (cfg.client_id, cfg.client_secret, cfg.refresh_token) == ("cid", "sec", "1//r")


def test_config_from_inbox_rejects_missing_credentials_or_sources() -> None:
    with pytest.raises(ValueError, match="credentials"):
        config_from_inbox(inbox(), {"client_id": "cid"})
    with pytest.raises(ValueError, match="channel_id and/or video_ids"):
        config_from_inbox(inbox(address=None), CREDS)
    with pytest.raises(ValueError, match="max_results"):
        config_from_inbox(inbox(max_results=500), CREDS)
