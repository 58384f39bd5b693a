"""Map a verified Zalo OA webhook event to an `InboundMessage` (or None when ignored).

Handled: `user_send_text`, `user_send_image`, `user_send_gif`, `user_send_file`,
`user_send_audio`, `user_send_video`, `user_send_sticker`. Everything else (follow/unfollow,
`oa_send_*` echoes of our own sends, delivery/seen receipts, link/location/business-card,
anonymous and group events) is acknowledged and ignored.
"""

from __future__ import annotations

from typing import Any

from connectors.base import Attachment, InboundMessage
from connectors.zalo.config import ZaloAccount
from gateway.core.domain import Channel

MESSAGE_EVENTS = frozenset(
    {
        "user_send_text",
        "user_send_image",
        "user_send_gif",
        "user_send_file",
        "user_send_audio",
        "user_send_video",
        "user_send_sticker",
    }
)
_KIND = {"image": "image", "gif": "image", "sticker": "image", "file": "file", "audio": "audio", "video": "video"}


class EventError(ValueError):
    """A signed event whose shape we cannot use (answered 400)."""


def thread_id(oa_id: str, user_id: str) -> str:
    return f"{oa_id}:{user_id}"


def _str(v: Any) -> str | None:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, int) and not isinstance(v, bool):  # tolerate numeric ids, never float them
        return str(v)
    return None


def _id_of(obj: Any) -> str | None:
    return _str(obj.get("id")) if isinstance(obj, dict) else None


def _attachment(item: Any) -> Attachment | None:
    if not isinstance(item, dict):
        return None
    kind = _KIND.get(str(item.get("type")))
    payload = item.get("payload")
    if kind is None or not isinstance(payload, dict):
        return None
    size_raw = payload.get("size")
    size = int(size_raw) if isinstance(size_raw, (str, int)) and str(size_raw).isdigit() else None
    name = payload.get("name") if isinstance(payload.get("name"), str) else None
    url = payload.get("url") if isinstance(payload.get("url"), str) else None
    return Attachment(kind=kind, url=url, name=name, size=size)


def account_oa_id(event: dict[str, Any]) -> str | None:
    """The OA an event belongs to: recipient of `user_*` events, sender of `oa_*` ones, else `oa_id`."""
    name = str(event.get("event_name", ""))
    if name.startswith("user_") and (rid := _id_of(event.get("recipient"))) is not None:
        return rid
    if name.startswith("oa_") and (sid := _id_of(event.get("sender"))) is not None:
        return sid
    return _str(event.get("oa_id"))


def to_inbound(event: dict[str, Any], account: ZaloAccount) -> InboundMessage | None:
    name = event.get("event_name")
    if name not in MESSAGE_EVENTS:
        return None
    sender = _id_of(event.get("sender"))
    recipient = _id_of(event.get("recipient"))
    message = event.get("message")
    if sender is None or not isinstance(message, dict):
        raise EventError("message event without sender.id or message")
    if recipient is not None and recipient != account.oa_id:
        raise EventError("event routed to the wrong OA")
    msg_id = _str(message.get("msg_id"))
    if msg_id is None:
        raise EventError("message event without message.msg_id")
    text = message.get("text")
    raw_atts = message.get("attachments")
    atts = tuple(a for a in (_attachment(x) for x in (raw_atts if isinstance(raw_atts, list) else [])) if a)
    if name != "user_send_text" and not atts:
        raise EventError(f"{name} without a usable attachment")
    ts = _str(event.get("timestamp"))
    meta: dict[str, Any] = {"event_name": name, "oa_id": account.oa_id}
    for key in ("user_id_by_app", "app_id"):
        if (v := _str(event.get(key))) is not None:
            meta[key] = v
    if (quote := _str(message.get("quote_msg_id"))) is not None:
        meta["quote_msg_id"] = quote
    return InboundMessage(
        tenant_id=account.tenant_id,
        channel_id=account.channel_id,
        channel=Channel.ZALO,
        external_thread_id=thread_id(account.oa_id, sender),
        external_author_id=sender,
        external_message_id=msg_id,
        text=text if isinstance(text, str) else "",
        sent_at=int(ts) / 1000.0 if ts is not None and ts.isdigit() else 0.0,
        attachments=atts,
        meta=meta,
    )
