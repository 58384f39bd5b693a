"""Small, strict validators for untrusted payloads (Socket.IO events, REST bodies).

Each raises GatewayError(bad_request) naming the field; nothing is coerced silently.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from gateway.core.errors import Code, GatewayError, bad_request

E = TypeVar("E", bound=enum.Enum)

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def as_object(payload: object, what: str = "payload") -> Mapping[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise bad_request(f"{what} must be an object")
    return payload


def req_str(obj: Mapping[str, Any], key: str, *, max_len: int = 200, allow_empty: bool = False) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise bad_request(f"'{key}' must be a string", field=key)
    if not allow_empty and not v.strip():
        raise bad_request(f"'{key}' must not be empty", field=key)
    if len(v) > max_len:
        raise bad_request(f"'{key}' is longer than {max_len} characters", field=key)
    if "\x00" in v:
        raise bad_request(f"'{key}' must not contain NUL", field=key)
    return v


def opt_str(obj: Mapping[str, Any], key: str, *, max_len: int = 200) -> str | None:
    if obj.get(key) is None:
        return None
    return req_str(obj, key, max_len=max_len, allow_empty=True) or None


def req_id(obj: Mapping[str, Any], key: str) -> str:
    """An object id issued by this server (32 lowercase hex chars)."""
    v = obj.get(key)
    if not isinstance(v, str) or not _ID_RE.match(v):
        raise bad_request(f"'{key}' must be an id", field=key)
    return v


def opt_id(obj: Mapping[str, Any], key: str) -> str | None:
    return None if obj.get(key) is None else req_id(obj, key)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def req_client_id(obj: Mapping[str, Any], key: str = "client_id") -> str:
    """A client-made UUID, normalised to its canonical lowercase form."""
    v = obj.get(key)
    if not isinstance(v, str) or len(v) > 64:
        raise bad_request(f"'{key}' must be a UUID string", field=key)
    if _CANONICAL_UUID.fullmatch(v):  # what clients send (crypto.randomUUID): no parse needed
        return v
    try:
        return str(uuid.UUID(v))
    except ValueError as exc:
        raise bad_request(f"'{key}' must be a UUID string", field=key) from exc


def req_int(obj: Mapping[str, Any], key: str, *, lo: int = 0, hi: int = 2**62) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad_request(f"'{key}' must be an integer", field=key)
    if not lo <= v <= hi:
        raise bad_request(f"'{key}' must be between {lo} and {hi}", field=key)
    return v


def opt_int(obj: Mapping[str, Any], key: str, default: int, *, lo: int = 0, hi: int = 2**62) -> int:
    return default if obj.get(key) is None else req_int(obj, key, lo=lo, hi=hi)


def opt_bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    v = obj.get(key, default)
    if not isinstance(v, bool):
        raise bad_request(f"'{key}' must be a boolean", field=key)
    return v


def opt_enum(obj: Mapping[str, Any], key: str, cls: type[E]) -> E | None:
    v = obj.get(key)
    if v is None:
        return None
    try:
        return cls(v)
    except ValueError as exc:
        allowed = ", ".join(str(m.value) for m in cls)
        raise bad_request(f"'{key}' must be one of: {allowed}", field=key) from exc


def req_enum(obj: Mapping[str, Any], key: str, cls: type[E]) -> E:
    v = opt_enum(obj, key, cls)
    if v is None:
        raise bad_request(f"'{key}' is required", field=key)
    return v


def message_text(obj: Mapping[str, Any], max_chars: int) -> str:
    v = obj.get("text")
    if not isinstance(v, str):
        raise bad_request("'text' must be a string", field="text")
    if len(v) > max_chars:
        raise GatewayError(Code.TEXT_TOO_LONG, f"text is longer than {max_chars} characters", limit=max_chars)
    if not v.strip():
        raise bad_request("'text' must not be empty", field="text")
    if "\x00" in v:
        raise bad_request("'text' must not contain NUL", field="text")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): not storable text
            raise bad_request("'text' must be valid Unicode", field="text") from None
    return v
