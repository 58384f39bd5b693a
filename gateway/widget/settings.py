"""Per-tenant widget settings: defaults, validation, the public view."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.core.errors import bad_request

FIELD_MODES = ("off", "optional", "required")
LANGS = ("auto", "vi", "en")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

DEFAULTS: dict[str, Any] = {
    "title": "",  # empty: the widget's own "Chat with us" / "Trò chuyện với chúng tôi"
    "greeting": "",
    "color": "#0b63ce",
    "lang": "auto",
    "prechat": {"enabled": True, "name": "optional", "email": "optional"},
}


def merged(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Stored settings over the defaults (unknown keys dropped)."""
    out = {**DEFAULTS, "prechat": dict(DEFAULTS["prechat"])}
    if stored:
        for key in ("title", "greeting", "color", "lang"):
            if key in stored:
                out[key] = stored[key]
        pre = stored.get("prechat")
        if isinstance(pre, Mapping):
            out["prechat"].update({k: v for k, v in pre.items() if k in out["prechat"]})
    return out


def validate(body: Mapping[str, Any]) -> dict[str, Any]:
    """A settings update (partial) → the validated fields; unknown fields are refused."""
    unknown = set(body) - set(DEFAULTS)
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))[:200]}")
    out: dict[str, Any] = {}
    for key, max_len in (("title", 80), ("greeting", 500)):
        if key in body:
            v = body[key]
            if not isinstance(v, str) or len(v) > max_len:
                raise bad_request(f"'{key}' must be a string of at most {max_len} characters", field=key)
            out[key] = v
    if "color" in body:
        if not isinstance(body["color"], str) or not _COLOR_RE.match(body["color"]):
            raise bad_request("'color' must look like #1a2b3c", field="color")
        out["color"] = body["color"]
    if "lang" in body:
        if body["lang"] not in LANGS:
            raise bad_request(f"'lang' must be one of: {', '.join(LANGS)}", field="lang")
        out["lang"] = body["lang"]
    if "prechat" in body:
        pre = body["prechat"]
        if not isinstance(pre, Mapping) or set(pre) - {"enabled", "name", "email"}:
            raise bad_request("'prechat' must be {enabled?, name?, email?}", field="prechat")
        p: dict[str, Any] = {}
        if "enabled" in pre:
            if not isinstance(pre["enabled"], bool):
                raise bad_request("'prechat.enabled' must be a boolean", field="prechat.enabled")
            p["enabled"] = pre["enabled"]
        for f in ("name", "email"):
            if f in pre:
                if pre[f] not in FIELD_MODES:
                    raise bad_request(f"'prechat.{f}' must be one of: {', '.join(FIELD_MODES)}",
                                      field=f"prechat.{f}")
                p[f] = pre[f]
        out["prechat"] = p
    return out
