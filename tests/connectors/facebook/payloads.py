"""Webhook bodies shaped like Meta's (see /work/shared/channels/facebook.md §3-4)."""

from __future__ import annotations

from typing import Any

PAGE_ID = "206070979425408"
OTHER_PAGE_ID = "106070979425999"
PSID = "24266381753005180"
POST_ID = f"{PAGE_ID}_712750021053074"
COMMENT_ID = "712750021053074_1063824911537852"


def delivery(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": list(entries)}


def messaging_entry(*events: dict[str, Any], page_id: str = PAGE_ID, time_ms: int = 1718000000456) -> dict[str, Any]:
    return {"id": page_id, "time": time_ms, "messaging": list(events)}


def text_event(mid: str, text: str, *, psid: str = PSID, page_id: str = PAGE_ID, ts: int = 1718000000123,
               **extra: Any) -> dict[str, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": ts,
            "message": {"mid": mid, "text": text, **extra}}


def attachment_event(mid: str, *atts: tuple[str, str], psid: str = PSID, page_id: str = PAGE_ID,
                     ts: int = 1718000000300) -> dict[str, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": ts,
            "message": {"mid": mid, "attachments": [{"type": t, "payload": {"url": u}} for t, u in atts]}}


def echo_event(mid: str, text: str, *, psid: str = PSID, page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"sender": {"id": page_id}, "recipient": {"id": psid}, "timestamp": 1718000000480,
            "message": {"mid": mid, "is_echo": True, "app_id": 1517776481860111, "metadata": "ticket:42",
                        "text": text}}


def delivery_event(*mids: str, psid: str = PSID, page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": 1718000001000,
            "delivery": {"mids": list(mids), "watermark": 1718000000999}}


def read_event(psid: str = PSID, page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": 1718000001000,
            "read": {"watermark": 1718000000999}}


def feed_entry(*values: dict[str, Any], page_id: str = PAGE_ID, time_s: int = 1707211879) -> dict[str, Any]:
    return {"id": page_id, "time": time_s, "changes": [{"field": "feed", "value": v} for v in values]}


def comment_value(verb: str, *, comment_id: str = COMMENT_ID, post_id: str = POST_ID, parent_id: str | None = None,
                  from_id: str = PSID, name: str = "Nguyễn Văn An", message: str | None = "Đơn hàng của tôi đâu?",
                  created_time: int | str = 1707211876) -> dict[str, Any]:
    v: dict[str, Any] = {
        "item": "comment", "verb": verb, "post_id": post_id, "comment_id": comment_id,
        "parent_id": parent_id or post_id, "from": {"id": from_id, "name": name}, "created_time": created_time,
        "post": {"id": post_id, "status_type": "added_photos", "is_published": True,
                 "updated_time": "2024-02-06T09:31:16+0000", "promotion_status": "inactive",
                 "permalink_url": "https://www.facebook.com/shop/posts/pfbid0abc"},
    }
    if message is not None:
        v["message"] = message
    return v
