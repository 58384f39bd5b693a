"""YouTube ``commentThread`` / ``comment`` resources → typed comments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Comment:
    id: str
    thread_id: str
    parent_id: str | None  # set on replies only
    video_id: str | None
    channel_id: str | None  # channel the comment belongs to (the video owner's)
    author_channel_id: str | None
    author_name: str | None
    author_channel_url: str | None
    text: str
    published_at: float
    updated_at: float | None


@dataclass(frozen=True, slots=True)
class Thread:
    id: str
    channel_id: str | None
    video_id: str | None
    top: Comment
    replies: tuple[Comment, ...]
    total_reply_count: int
    can_reply: bool | None

    @property
    def replies_complete(self) -> bool:
        """``replies.comments`` is only a subset unless its length equals totalReplyCount."""
        return len(self.replies) >= self.total_reply_count


def parse_time(value: Any) -> float | None:
    """RFC 3339 (``2026-11-20T08:15:30Z``, optional fraction) → UNIX seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_comment(resource: Any, *, thread_id: str | None = None) -> Comment | None:
    """A ``youtube#comment`` resource, or None when it lacks an id or a time."""
    res = _dict(resource)
    cid = _str(res.get("id"))
    sn = _dict(res.get("snippet"))
    published = parse_time(sn.get("publishedAt"))
    if cid is None or published is None:
        return None
    parent = _str(sn.get("parentId"))
    text = sn.get("textOriginal")
    if not isinstance(text, str):
        text = sn.get("textDisplay") if isinstance(sn.get("textDisplay"), str) else ""
    return Comment(
        id=cid,
        thread_id=thread_id or parent or cid,
        parent_id=parent,
        video_id=_str(sn.get("videoId")),
        channel_id=_str(sn.get("channelId")),
        author_channel_id=_str(_dict(sn.get("authorChannelId")).get("value")),
        author_name=_str(sn.get("authorDisplayName")),
        author_channel_url=_str(sn.get("authorChannelUrl")),
        text=str(text),
        published_at=published,
        updated_at=parse_time(sn.get("updatedAt")),
    )


def parse_thread(resource: Any) -> Thread | None:
    """A ``youtube#commentThread`` resource (``part=snippet,replies``), or None if malformed."""
    res = _dict(resource)
    tid = _str(res.get("id"))
    sn = _dict(res.get("snippet"))
    if tid is None:
        return None
    top = parse_comment(sn.get("topLevelComment"), thread_id=tid)
    if top is None:
        return None
    replies: list[Comment] = []
    for item in _dict(res.get("replies")).get("comments") or []:
        reply = parse_comment(item, thread_id=tid)
        if reply is not None:
            replies.append(reply)
    count = sn.get("totalReplyCount")
    can_reply = sn.get("canReply")
    return Thread(
        id=tid,
        channel_id=_str(sn.get("channelId")),
        video_id=_str(sn.get("videoId")) or top.video_id,
        top=top,
        replies=tuple(replies),
        total_reply_count=count if isinstance(count, int) else len(replies),
        can_reply=can_reply if isinstance(can_reply, bool) else None,
    )
