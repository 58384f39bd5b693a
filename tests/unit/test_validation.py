from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.errors import Code, GatewayError
from gateway.core.validation import message_text, opt_int, req_client_id, req_id, req_int, req_str

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


def test_client_id_is_canonicalised() -> None:
    u = uuid.uuid4()
    assert req_client_id({"client_id": str(u).upper()}) == str(u)
    assert req_client_id({"client_id": u.hex}) == str(u)


@given(json_values)
def test_validators_raise_only_bad_request(value: object) -> None:
    for fn in (
        lambda: req_id({"x": value}, "x"),
        lambda: req_client_id({"client_id": value}),
        lambda: req_int({"x": value}, "x"),
        lambda: req_str({"x": value}, "x"),
        lambda: opt_int({"x": value}, "x", 1),
        lambda: message_text({"text": value}, 100),
    ):
        try:
            fn()
        except GatewayError as exc:
            assert exc.code in (Code.BAD_REQUEST, Code.TEXT_TOO_LONG)


def test_text_limits() -> None:
    assert message_text({"text": "chào"}, 4) == "chào"
    with pytest.raises(GatewayError) as info:
        message_text({"text": "x" * 5}, 4)
    assert info.value.code == Code.TEXT_TOO_LONG
    with pytest.raises(GatewayError):
        req_int({"x": True}, "x")


def test_text_must_be_storable_unicode() -> None:
    """A lone surrogate ("\\ud800" in the JSON) decodes to a str that no database can store."""
    assert message_text({"text": "emoji 👋 ok"}, 100) == "emoji 👋 ok"
    for bad in ("\ud800", "a\udfffb", "x\x00"):
        with pytest.raises(GatewayError) as info:
            message_text({"text": bad}, 100)
        assert info.value.code == Code.BAD_REQUEST


def test_lru_cache_forgets_the_least_recently_used() -> None:
    from gateway.aio.lru import LruCache

    c: LruCache[str, int] = LruCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # now "b" is the least recently used
    c.put("c", 3)
    assert (c.get("a"), c.get("b"), c.get("c"), len(c)) == (1, None, 3, 2)
    with pytest.raises(ValueError):
        LruCache(0)
