"""Turn a verified, decoded Page webhook delivery into `InboundMessage`s.

Pure functions, no I/O. Events we do not turn into messages (echoes, deliveries, reads, reactions, the
Page's own comments, unknown Pages, other feed items) are counted in `ParseResult.skipped` by reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import Attachment, InboundMessage
from connectors.facebook.config import FacebookPage
from connectors.facebook.threads import CommentThread, MessengerThread
from gateway.core.domain import Channel

MEDIA_KINDS = frozenset({"image", "audio", "video", "file"})
EDIT_VERBS = frozenset({"edited", "edit"})
REMOVE_VERBS = frozenset({"remove", "delete"})
EDITED_PREFIX = "[edited] "
REMOVED_TEXT = "[comment removed]"


class MalformedPayload(ValueError):
    """The JSON is valid but is not a Page webhook delivery at all."""


@dataclass(slots=True)
class ParseResult:
    messages: list[InboundMessage] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def parse_delivery(payload: Any, pages: Mapping[str, FacebookPage]) -> ParseResult:
    if not isinstance(payload, dict) or not isinstance(payload.get("entry", []), list):
        raise MalformedPayload("expected an object with an 'entry' array")
    result = ParseResult()
    if payload.get("object") != "page":
        result.skipped["not_page_object"] += 1
        return result
    for entry in payload.get("entry", []):
        if not isinstance(entry, dict):
            result.skipped["bad_entry"] += 1
            continue
        page_id = _str(entry.get("id"))
        page = pages.get(page_id) if page_id else None
        if page is None or page_id is None:
            result.skipped["unknown_page"] += 1
            continue
        for event in _dicts(entry.get("messaging")):
            _messaging_event(event, page_id, page, result)
        for _ in _dicts(entry.get("standby")):
            result.skipped["standby"] += 1  # another app owns the thread (handover protocol)
        for change in _dicts(entry.get("changes")):
            _feed_change(change, page_id, page, _num(entry.get("time")), result)
    return result


# -- Messenger -------------------------------------------------------------------------------------


def _messaging_event(event: dict[str, Any], page_id: str, page: FacebookPage, out: ParseResult) -> None:
    message = event.get("message")
    postback = event.get("postback")
    if not isinstance(message, dict) and not isinstance(postback, dict):
        kind = next((k for k in ("delivery", "read", "reaction", "referral", "optin") if k in event), "other")
        out.skipped[kind] += 1
        return
    psid = _str(_get(event, "sender", "id"))
    ts = _num(event.get("timestamp"))
    if psid is None or psid == page_id:
        out.skipped["echo" if isinstance(message, dict) and message.get("is_echo") else "no_sender"] += 1
        return
    sent_at = ts / 1000.0 if ts is not None else 0.0
    thread = MessengerThread(page_id, psid).encode()
    if isinstance(message, dict):
        if message.get("is_echo"):
            out.skipped["echo"] += 1
            return
        mid = _str(message.get("mid"))
        if mid is None:
            out.skipped["no_mid"] += 1
            return
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        attachments, other = _attachments(message.get("attachments"))
        if not text and other:
            text = "\n".join(_describe(o) for o in other)
        if not text and not attachments:
            out.skipped["empty_message"] += 1
            return
        meta: dict[str, Any] = {"fb_kind": "message", "page_id": page_id, "mid": mid}
        if other:
            meta["other_attachments"] = other
        if (qr := _str(_get(message, "quick_reply", "payload"))) is not None:
            meta["quick_reply_payload"] = qr
        if (reply_to := _str(_get(message, "reply_to", "mid"))) is not None:
            meta["reply_to_mid"] = reply_to
        out.messages.append(
            InboundMessage(
                tenant_id=page.tenant_id,
                channel=Channel.FACEBOOK,
                channel_id=page.channel_id,
                external_thread_id=thread,
                external_author_id=psid,
                external_message_id=mid,
                text=str(text),
                sent_at=sent_at,
                attachments=tuple(attachments),
                meta=meta,
            )
        )
        return
    assert isinstance(postback, dict)
    title = _str(postback.get("title")) or _str(postback.get("payload")) or ""
    # `mid` exists on postbacks since v11.0; else the (psid, timestamp) pair is stable across retries.
    pid = _str(postback.get("mid")) or f"postback:{psid}:{ts}"
    out.messages.append(
        InboundMessage(
            tenant_id=page.tenant_id,
            channel=Channel.FACEBOOK,
            channel_id=page.channel_id,
            external_thread_id=thread,
            external_author_id=psid,
            external_message_id=pid,
            text=title,
            sent_at=sent_at,
            meta={"fb_kind": "postback", "page_id": page_id, "postback_payload": postback.get("payload")},
        )
    )


def _attachments(raw: Any) -> tuple[list[Attachment], list[dict[str, Any]]]:
    media: list[Attachment] = []
    other: list[dict[str, Any]] = []
    for att in _dicts(raw):
        kind = _str(att.get("type")) or "unknown"
        url = _str(_get(att, "payload", "url")) or _str(att.get("url"))
        if kind in MEDIA_KINDS and url:
            media.append(Attachment(kind=kind, url=url))
        else:
            other.append({"type": kind, "url": url, "title": _str(att.get("title"))})
    return media, other


def _describe(other: dict[str, Any]) -> str:
    detail = other.get("title") or other.get("url") or ""
    return f"[{other['type']}] {detail}".rstrip()


# -- Page feed (comments) --------------------------------------------------------------------------


def _feed_change(
    change: dict[str, Any], page_id: str, page: FacebookPage, entry_time: float | None, out: ParseResult
) -> None:
    value = change.get("value")
    if change.get("field") != "feed" or not isinstance(value, dict):
        out.skipped["other_field"] += 1
        return
    if value.get("item") != "comment":
        out.skipped["feed_not_comment"] += 1
        return
    verb = value.get("verb")
    author = _str(_get(value, "from", "id"))
    comment_id = _str(value.get("comment_id"))
    if author == page_id:
        out.skipped["own_comment"] += 1
        return
    if comment_id is None or author is None:
        out.skipped["comment_without_id_or_author"] += 1
        return
    post_id = _str(value.get("post_id"))
    parent_id = _str(value.get("parent_id"))
    top = comment_id if parent_id is None or parent_id == post_id else parent_id
    sent_at = _time(value.get("created_time")) or entry_time or 0.0
    text = value.get("message") if isinstance(value.get("message"), str) else ""
    meta: dict[str, Any] = {
        "fb_kind": "comment",
        "page_id": page_id,
        "post_id": post_id,
        "comment_id": comment_id,
        "parent_id": parent_id,
        "verb": verb,
    }
    if (permalink := _str(_get(value, "post", "permalink_url"))) is not None:
        meta["post_permalink_url"] = permalink
    attachments: tuple[Attachment, ...] = ()
    if (photo := _str(value.get("photo"))) is not None:
        attachments = (Attachment(kind="image", url=photo),)
    if verb == "add":
        if not text and not attachments:
            out.skipped["comment_without_content"] += 1
            return
        external_id = comment_id
    elif verb in EDIT_VERBS:
        digest = hashlib.sha256(str(text).encode()).hexdigest()[:16]
        external_id = f"{comment_id}:edited:{digest}"  # every distinct edit once; a retried webhook is a dup
        text = EDITED_PREFIX + str(text)
        meta["fb_kind"] = "comment_edit"
        meta["edit_of"] = comment_id
    elif verb in REMOVE_VERBS:
        external_id = f"{comment_id}:removed"
        text = REMOVED_TEXT
        attachments = ()
        meta["fb_kind"] = "comment_remove"
        meta["system"] = True
        meta["removed"] = comment_id
    else:
        out.skipped[f"comment_verb_{verb}"] += 1
        return
    out.messages.append(
        InboundMessage(
            tenant_id=page.tenant_id,
            channel=Channel.FACEBOOK,
            channel_id=page.channel_id,
            external_thread_id=CommentThread(page_id, top).encode(),
            external_author_id=author,
            external_message_id=external_id,
            text=str(text),
            sent_at=sent_at,
            attachments=attachments,
            author_name=_str(_get(value, "from", "name")),
            meta=meta,
        )
    )


# -- helpers ---------------------------------------------------------------------------------------


def _dicts(raw: Any) -> list[dict[str, Any]]:
    return [x for x in raw if isinstance(x, dict)] if isinstance(raw, list) else []


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _str(raw: Any) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        return raw or None
    if isinstance(raw, int):
        return str(raw)
    return None


def _num(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    return float(raw)


def _time(raw: Any) -> float | None:
    """`created_time`: epoch seconds (observed) or an ISO-8601 string like 2024-02-06T09:31:16+0000."""
    if (n := _num(raw)) is not None:
        return n
    if isinstance(raw, str):
        try:
            return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            try:
                return datetime.fromisoformat(raw).timestamp()
            except ValueError:
                return None
    return None
