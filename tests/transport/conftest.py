from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gc import served_gc


@pytest.fixture
def gc_as_served() -> Iterator[None]:
    """The garbage collector as `gateway serve` tunes it (tests/support/gc.py), for the
    tests that bound another client's round trip."""
    with served_gc():
        yield
