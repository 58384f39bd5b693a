"""`YouTubeConnector`: polls comment threads of a channel / videos, replies with comments.insert.

Poll (every `poll_interval` seconds, between `start` and `stop`), per source:

1. ``commentThreads.list`` newest first (``order=time``), following ``nextPageToken`` until a
   thread's top-level ``publishedAt`` is older than the stored high-water mark minus
   `overlap` (or the first-run `initial_lookback` floor), at most `max_pages_per_poll` pages;
2. a thread whose embedded ``replies.comments`` is a subset (fewer than totalReplyCount) and
   whose reply count grew is completed with ``comments.list?parentId=``;
3. every `reply_sweep_every` polls, tracked older threads are re-read by id
   (``commentThreads.list?id=…``, 50 per call) to catch replies on threads that ``order=time``
   does not move up;
4. new comments (not in the checkpoint's seen ids, not by our own channel) go to the sink
   oldest first; then the checkpoint is saved. The sink also dedups by comment id.

Errors: quotaExceeded pauses the loop until the next Pacific midnight (or `quota_backoff`);
rate limits, 429, 5xx, network and sink errors back off exponentially; a source answering
commentsDisabled / forbidden / 404 is skipped for `source_recheck`; 401 refreshes the token
once (in `YouTubeApi`). The loop never dies on an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from connectors.base import InboundMessage, InboundSink, OutboundMessage, PermanentError, SendResult, TransientError
from connectors.oauth import AuthError, TokenProvider
from connectors.youtube.api import YouTubeApi
from connectors.youtube.backoff import ExponentialBackoff, seconds_until_pacific_midnight
from connectors.youtube.checkpoint import Checkpoint, CheckpointRepository
from connectors.youtube.config import YouTubeConfig
from connectors.youtube.errors import ApiError, ErrorKind
from connectors.youtube.parse import Comment, Thread, parse_comment, parse_thread
from gateway.core.domain import Channel

SWEEP_BATCH = 50
_log = logging.getLogger(__name__)


class _Stopping(Exception):
    """stop() was called: abandon the poll before anything reached the sink."""


@dataclass
class PollStats:
    polls: int = 0
    emitted: int = 0
    errors: int = 0
    last_error: str | None = None
    last_delay: float | None = None  # pause chosen after the last poll
    api_calls: int = 0


class YouTubeConnector:
    channel = Channel.YOUTUBE

    def __init__(
        self,
        config: YouTubeConfig,
        checkpoints: CheckpointRepository,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._checkpoints = checkpoints
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._log = logger or _log
        self.tokens = TokenProvider(
            session=self._get_session,
            token_url=config.token_url,
            client_id=config.client_id,
            client_secret=config.client_secret,
            refresh_token=config.refresh_token,
            clock=clock,
            margin=config.token_margin,
            timeout=config.request_timeout,
        )
        self._api = YouTubeApi(
            session=self._get_session, tokens=self.tokens, api_base=config.api_base, timeout=config.request_timeout
        )
        self._own = set(config.own_channel_ids)
        self._rate = ExponentialBackoff(config.rate_backoff_initial, config.rate_backoff_max)
        self._source_paused: dict[str, float] = {}
        self._sink: InboundSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.stats = PollStats()

    # --- Connector interface ----------------------------------------------
    async def start(self, sink: InboundSink) -> None:
        if self._task is not None:
            return
        self._sink = sink
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"youtube-poll-{self.config.tenant_id}")

    async def stop(self) -> None:
        """Let the current poll finish (its API calls are abandoned, a started hand-off to the
        sink and the checkpoint save complete), then end the loop; cancel after `stop_timeout`."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), self.config.stop_timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def routes(self) -> list[web.RouteDef]:
        return []

    async def send(self, msg: OutboundMessage) -> SendResult:
        parent = msg.meta.get("parent_id")
        parent_id = parent if isinstance(parent, str) and parent else msg.external_thread_id
        if msg.attachments:
            # an agent's file goes out as a link that expires (LINK_TTL): in a public comment,
            # a dead link for ever
            raise PermanentError("YouTube comment replies carry text only; send the file another way")
        text = msg.text.strip()
        if not text:
            raise PermanentError("empty reply: YouTube comments need text")
        for attempt in (1, 2):
            try:
                resource = await self._api.insert_reply(parent_id=parent_id, text=text)
                break
            except ApiError as exc:
                if exc.kind is ErrorKind.RETRY_ONCE and attempt == 1:
                    continue
                raise self._send_error(exc) from exc
            except AuthError as exc:
                raise (PermanentError(str(exc)) if exc.permanent else TransientError(str(exc))) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(f"YouTube unreachable: {exc!r}") from exc
        comment = parse_comment(resource)
        if comment is not None and comment.author_channel_id:
            self._own.add(comment.author_channel_id)  # never re-import our own reply
        cid = resource.get("id")
        meta: dict[str, object] = {"parent_id": parent_id}
        if comment is not None:
            meta["published_at"] = comment.published_at
        return SendResult(external_message_id=cid if isinstance(cid, str) else None, meta=meta)

    # --- polling ---------------------------------------------------------
    def wake(self) -> None:
        """Cut the current pause short (admin "poll now", tests)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            delay = self.config.poll_interval
            try:
                await self.poll_once()
                self._rate.reset()
            except asyncio.CancelledError:
                raise
            except _Stopping:
                return
            except Exception as exc:
                delay = self._error_delay(exc)
                self.stats.errors += 1
                self.stats.last_error = repr(exc)
                self._log.warning("youtube poll failed (tenant %s), next try in %.1fs: %r",
                                  self.config.tenant_id, delay, exc)
            self.stats.last_delay = delay
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _error_delay(self, exc: Exception) -> float:
        if isinstance(exc, ApiError):
            if exc.kind is ErrorKind.QUOTA:
                return self._quota_delay()
            return self._rate.next_delay(exc.retry_after)
        if isinstance(exc, AuthError) and exc.permanent:
            return self.config.rate_backoff_max
        return self._rate.next_delay()

    def _quota_delay(self) -> float:
        if self.config.quota_backoff is not None:
            return self.config.quota_backoff
        return seconds_until_pacific_midnight(self._clock())

    async def poll_once(self) -> int:
        """Poll every source once; returns how many comments went to the sink."""
        if self._sink is None:
            raise RuntimeError("poll_once before start()")
        self.stats.polls += 1
        emitted = 0
        for source in self.config.sources:
            if self._source_paused.get(source, 0.0) > self._clock():
                continue
            try:
                emitted += await self._poll_source(source, self._sink)
            except ApiError as exc:
                if exc.kind is not ErrorKind.PERMANENT:
                    raise
                self._source_paused[source] = self._clock() + self.config.source_recheck
                self.stats.last_error = str(exc)
                self._log.error("youtube source %s skipped for %.0fs: %s", source, self.config.source_recheck, exc)
        self.stats.emitted += emitted
        return emitted

    async def _poll_source(self, source: str, sink: InboundSink) -> int:
        cfg = self.config
        cp = await self._checkpoints.load(cfg.tenant_id, source) or Checkpoint()
        if cp.floor is None:
            cp.floor = self._clock() - cfg.initial_lookback
        threshold = cp.floor if cp.high_water is None else max(cp.floor, cp.high_water - cfg.overlap)
        threads: list[Thread] = []
        fresh: list[Comment] = []
        newest = cp.high_water
        page_token: str | None = None
        pages = 0
        restarted = False
        while True:
            try:
                page = await self._api.list_threads(source=source, page_token=page_token, max_results=cfg.max_results)
            except ApiError as exc:
                if exc.kind is ErrorKind.INVALID_PAGE_TOKEN and page_token and not restarted:
                    page_token, restarted = None, True
                    continue
                raise
            finally:
                self.stats.api_calls += 1
            self._check_stopping()
            pages += 1
            reached_old = False
            for item in page.get("items") or []:
                thread = parse_thread(item)
                if thread is None:
                    continue
                if thread.top.published_at < threshold:
                    reached_old = True
                    break
                fresh.extend(await self._thread_comments(thread, cp))
                threads.append(thread)
                newest = thread.top.published_at if newest is None else max(newest, thread.top.published_at)
            token = page.get("nextPageToken")
            if reached_old or not isinstance(token, str) or not token:
                break
            if pages >= cfg.max_pages_per_poll:
                self._log.warning("youtube source %s: stopped after %d pages (max_pages_per_poll)", source, pages)
                break
            page_token = token
        if cfg.reply_sweep_every > 0 and self.stats.polls % cfg.reply_sweep_every == 0:
            swept = await self._sweep(cp, skip={t.id for t in threads})
            threads.extend(swept)
            for thread in swept:
                fresh.extend(await self._thread_comments(thread, cp))
        self._check_stopping()
        emitted = await self._emit(source, fresh, cp, sink)
        for thread in threads:
            cp.track(thread.id, thread.total_reply_count, cfg.max_tracked_threads)
        cp.high_water = newest
        await asyncio.shield(self._checkpoints.save(cfg.tenant_id, source, cp))
        return emitted

    def _check_stopping(self) -> None:
        if self._stopping:
            raise _Stopping()

    async def _thread_comments(self, thread: Thread, cp: Checkpoint) -> list[Comment]:
        known = cp.threads.get(thread.id)
        if thread.replies_complete or (known is not None and thread.total_reply_count <= known):
            return [thread.top, *thread.replies]
        replies: list[Comment] = []
        page_token: str | None = None
        for _ in range(self.config.max_pages_per_poll):
            try:
                page = await self._api.list_replies(parent_id=thread.id, page_token=page_token)
            finally:
                self.stats.api_calls += 1
            for item in page.get("items") or []:
                reply = parse_comment(item, thread_id=thread.id)
                if reply is not None:
                    replies.append(reply)
            token = page.get("nextPageToken")
            if not isinstance(token, str) or not token:
                break
            page_token = token
        return [thread.top, *thread.replies, *replies]

    async def _sweep(self, cp: Checkpoint, skip: set[str]) -> list[Thread]:
        """Tracked threads (not seen in this poll) whose reply count grew."""
        ids = [t for t in reversed(cp.threads) if t not in skip]
        grown: list[Thread] = []
        for start in range(0, len(ids), SWEEP_BATCH):
            batch = ids[start : start + SWEEP_BATCH]
            try:
                page = await self._api.get_threads(batch)
            finally:
                self.stats.api_calls += 1
            returned: set[str] = set()
            for item in page.get("items") or []:
                thread = parse_thread(item)
                if thread is None:
                    continue
                returned.add(thread.id)
                if thread.total_reply_count > cp.threads.get(thread.id, 0):
                    grown.append(thread)
            for gone in set(batch) - returned:  # deleted or hidden thread: stop tracking it
                cp.threads.pop(gone, None)
        return grown

    async def _emit(self, source: str, comments: list[Comment], cp: Checkpoint, sink: InboundSink) -> int:
        emitted = 0
        floor = cp.floor or 0.0
        try:
            for c in sorted(comments, key=lambda c: (c.published_at, c.id)):
                if cp.has_seen(c.id):
                    continue
                if c.published_at >= floor and not self._is_own(c):
                    await sink(self._inbound(c, source))
                    emitted += 1
                cp.mark_seen(c.id, self.config.max_seen_ids)
        except BaseException:
            # Keep what reached the sink; the high-water mark stays, so the rest is retried.
            await asyncio.shield(self._checkpoints.save(self.config.tenant_id, source, cp))
            raise
        return emitted

    def _is_own(self, c: Comment) -> bool:
        if c.author_channel_id is None:
            return False
        if self._own:
            return c.author_channel_id in self._own
        return c.author_channel_id == c.channel_id  # no own channel configured: the video owner

    def _inbound(self, c: Comment, source: str) -> InboundMessage:
        author = c.author_channel_id or f"name:{c.author_name or 'unknown'}"
        meta: dict[str, object] = {"source": source, "is_reply": c.parent_id is not None}
        for key, value in (
            ("video_id", c.video_id),
            ("youtube_channel_id", c.channel_id),
            ("parent_id", c.parent_id),
            ("author_channel_url", c.author_channel_url),
            ("updated_at", c.updated_at),
        ):
            if value is not None:
                meta[key] = value
        return InboundMessage(
            tenant_id=self.config.tenant_id,
            channel=Channel.YOUTUBE,
            external_thread_id=c.thread_id,
            external_author_id=author,
            external_message_id=c.id,
            text=c.text,
            sent_at=c.published_at,
            author_name=c.author_name,
            meta=meta,
            channel_id=self.config.inbox_id,
        )

    def _send_error(self, exc: ApiError) -> Exception:
        kind = exc.kind
        if kind is ErrorKind.QUOTA:
            return TransientError(str(exc), retry_after=self._quota_delay())
        if kind is ErrorKind.RATE:
            return TransientError(str(exc), retry_after=exc.retry_after)
        return PermanentError(str(exc))

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session
