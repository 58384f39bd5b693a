from __future__ import annotations

import time
from datetime import datetime

import pytest

from connectors.youtube.backoff import PACIFIC, ExponentialBackoff, seconds_until_pacific_midnight
from connectors.youtube.errors import ErrorKind, parse_error
from tests.connectors.youtube.conftest import Sink
from tests.connectors.youtube.fake_youtube import FakeYouTube
from tests.support.waits import until


async def test_quota_exceeded_backs_off_loop_survives_then_succeeds(fake: FakeYouTube, make_connector):
    fake.fail("commentThreads", 403, "quotaExceeded", times=2)
    tid = fake.add_thread("vid00000001", "hello", published=time.time() - 5)
    conn = make_connector(quota_backoff=0.3)
    sink = Sink()
    await conn.start(sink)
    await until(lambda: conn.stats.errors >= 1, timeout=5.0, interval=0.01)
    assert conn.stats.last_delay == 0.3 and "quotaExceeded" in (conn.stats.last_error or "")
    t0 = time.monotonic()
    await sink.wait_count(1)
    assert time.monotonic() - t0 >= 0.3  # waited out two quota pauses (first already partly elapsed)
    assert sink.ids == [tid] and conn.stats.errors == 2


async def test_quota_default_waits_until_pacific_midnight(fake: FakeYouTube, make_connector):
    fake.fail("commentThreads", 403, "quotaExceeded")
    conn = make_connector(quota_backoff=None)
    await conn.start(Sink())
    await until(lambda: conn.stats.last_delay is not None, timeout=5.0, interval=0.01)
    expected = seconds_until_pacific_midnight(time.time())
    assert conn.stats.last_delay is not None and abs(conn.stats.last_delay - expected) < 5


@pytest.mark.parametrize(("status", "reason"), [(403, "rateLimitExceeded"), (429, ""), (503, "backendError")])
async def test_rate_and_server_errors_back_off_exponentially(fake: FakeYouTube, make_connector, status, reason):
    fake.fail("commentThreads", status, reason, times=3)
    tid = fake.add_thread("vid00000001", "hi", published=time.time() - 5)
    conn = make_connector(rate_backoff_initial=0.02, rate_backoff_max=1.0)
    delays: list[float] = []
    orig = conn._rate.next_delay

    def spy(hint=None):
        d = orig(hint)
        delays.append(d)
        return d

    conn._rate.next_delay = spy
    sink = Sink()
    await conn.start(sink)
    await sink.wait_count(1)
    assert sink.ids == [tid]
    assert delays == [0.02, 0.04, 0.08]


async def test_retry_after_header_is_respected(fake: FakeYouTube, make_connector):
    fake.fail("commentThreads", 429, "", headers={"Retry-After": "0.5"})
    conn = make_connector(rate_backoff_initial=0.01, rate_backoff_max=5.0)
    await conn.start(Sink())
    await until(lambda: conn.stats.last_delay is not None, timeout=5.0, interval=0.01)
    assert conn.stats.last_delay == 0.5


async def test_401_refreshes_token_once_and_retries(fake: FakeYouTube, make_connector):
    conn = make_connector()
    sink = Sink()
    conn._sink = sink
    await conn.poll_once()
    assert conn.tokens.refreshes == 1
    fake.expire_tokens()
    tid = fake.add_thread("vid00000001", "after expiry", published=time.time())
    await conn.poll_once()
    assert conn.tokens.refreshes == 2 and sink.ids[-1] == tid
    assert conn.stats.errors == 0


async def test_token_refreshed_before_expiry(fake: FakeYouTube, make_connector):
    now = [time.time()]
    conn = make_connector(clock=lambda: now[0])
    conn._sink = Sink()
    await conn.poll_once()
    await conn.poll_once()
    assert len(fake.token_requests) == 1
    req = fake.token_requests[0]
    assert req["grant_type"] == "refresh_token" and req["refresh_token"] == fake.refresh_token
    assert req["client_id"] == fake.client_id and req["client_secret"] == fake.client_secret
    now[0] += 3599 - 60  # inside the 120 s margin
    await conn.poll_once()
    assert len(fake.token_requests) == 2
    assert all(q for q in fake.calls("commentThreads"))


async def test_revoked_refresh_token_does_not_kill_loop(fake: FakeYouTube, make_connector):
    fake.revoked = True
    conn = make_connector(rate_backoff_max=0.1)
    sink = Sink()
    await conn.start(sink)
    await until(lambda: conn.stats.errors >= 2, timeout=5.0, interval=0.01)
    assert "invalid_grant" in (conn.stats.last_error or "")
    assert conn.stats.last_delay == 0.1  # permanent auth failure: long (max) pause
    fake.revoked = False  # operator re-consented
    tid = fake.add_thread("vid00000001", "back", published=time.time())
    await sink.wait_count(1)
    assert sink.ids == [tid]


def test_parse_error_reads_first_reason() -> None:
    body = {
        "error": {
            "code": 403,
            "message": "The request cannot be completed because you have exceeded your <a href=\"/q\">quota</a>.",
            "errors": [{"message": "x", "domain": "youtube.quota", "reason": "quotaExceeded"}],
        }
    }
    err = parse_error(403, body)
    assert err.reason == "quotaExceeded" and err.kind is ErrorKind.QUOTA
    assert parse_error(403, {"error": {"errors": [{"reason": "rateLimitExceeded"}]}}).kind is ErrorKind.RATE
    assert parse_error(403, {"error": {"errors": [{"reason": "commentsDisabled"}]}}).kind is ErrorKind.PERMANENT
    assert parse_error(401, {"error": {"errors": [{"reason": "authError"}]}}).kind is ErrorKind.AUTH
    assert parse_error(502, "<html>bad gateway</html>").kind is ErrorKind.RATE
    stale = parse_error(400, {"error": {"errors": [{"reason": "invalidPageToken"}]}})
    assert stale.kind is ErrorKind.INVALID_PAGE_TOKEN
    assert parse_error(404, {}).kind is ErrorKind.PERMANENT


def test_pacific_midnight_across_dst() -> None:
    # 2026-11-01 is the PDT→PST switch: that day lasts 25 hours.
    before = datetime(2026, 10, 31, 23, 30, tzinfo=PACIFIC).timestamp()
    assert seconds_until_pacific_midnight(before) == 30 * 60
    day = datetime(2026, 11, 1, 0, 0, tzinfo=PACIFIC).timestamp()
    assert seconds_until_pacific_midnight(day) == 25 * 3600
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=PACIFIC).timestamp()
    assert seconds_until_pacific_midnight(summer) == 12 * 3600


def test_exponential_backoff_caps_and_resets() -> None:
    b = ExponentialBackoff(1.0, 5.0)
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next_delay(hint=3.0) == 3.0
