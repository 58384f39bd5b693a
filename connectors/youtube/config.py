"""Configuration of one YouTube inbox (one tenant, one authorised YouTube account)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_BASE = "https://www.googleapis.com/youtube/v3"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True, slots=True)
class YouTubeConfig:
    tenant_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    channel_id: str | None = None  # polls allThreadsRelatedToChannelId (every video of the channel)
    video_ids: tuple[str, ...] = ()  # polls videoId for each
    inbox_id: str | None = None  # the tenant inbox (connectors/channels.py ChannelConfig.id)
    own_channel_id: str | None = None  # our channel (comments by it are ignored); default channel_id
    api_base: str = DEFAULT_API_BASE
    token_url: str = DEFAULT_TOKEN_URL
    poll_interval: float = 60.0
    max_results: int = 100  # page size, 1..100
    max_pages_per_poll: int = 20  # quota guard: 1 unit per page
    overlap: float = 300.0  # seconds re-scanned below the high-water mark (dedup by id)
    initial_lookback: float = 86400.0  # first run: ignore comments older than this
    reply_sweep_every: int = 5  # every N polls re-check tracked threads for new replies (0 = never)
    max_tracked_threads: int = 200  # threads re-checked by the reply sweep (most recent first)
    max_seen_ids: int = 5000  # comment ids remembered per source for dedup
    quota_backoff: float | None = None  # fixed pause after quotaExceeded; None = until next Pacific midnight
    rate_backoff_initial: float = 5.0
    rate_backoff_max: float = 900.0
    source_recheck: float = 6 * 3600.0  # pause for a source answering commentsDisabled / forbidden / 404
    token_margin: float = 120.0  # refresh the access token this long before it expires
    request_timeout: float = 30.0
    stop_timeout: float = 10.0  # stop() waits this long for the current poll before cancelling it

    def __post_init__(self) -> None:
        if not self.channel_id and not self.video_ids:
            raise ValueError("YouTubeConfig needs channel_id and/or video_ids")
        if not 1 <= self.max_results <= 100:
            raise ValueError("max_results must be within 1..100")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")

    @property
    def sources(self) -> tuple[str, ...]:
        """Checkpoint keys: ``channel:<UC…>`` and ``video:<id>``."""
        out = [f"channel:{self.channel_id}"] if self.channel_id else []
        out.extend(f"video:{v}" for v in self.video_ids)
        return tuple(out)

    @property
    def own_channel_ids(self) -> frozenset[str]:
        return frozenset(c for c in (self.own_channel_id, self.channel_id) if c)
