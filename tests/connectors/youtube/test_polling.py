from __future__ import annotations

import time

import pytest

from connectors.youtube import MemoryCheckpointStore, YouTubeConnector
from gateway.core.domain import Channel
from tests.connectors.youtube.conftest import Sink
from tests.connectors.youtube.fake_youtube import OWNER_CHANNEL, FakeYouTube
from tests.support.waits import until


async def started(conn: YouTubeConnector) -> Sink:
    """Attach a sink without running the loop (tests drive poll_once themselves)."""
    sink = Sink()
    conn._sink = sink
    return sink


async def test_paging_follows_next_page_token_and_emits_oldest_first(fake: FakeYouTube, make_connector):
    base = time.time() - 3600
    tids = [fake.add_thread("vid00000001", f"hỏi {i}", published=base + i) for i in range(250)]
    conn = make_connector(max_results=100)
    sink = await started(conn)

    assert await conn.poll_once() == 250

    calls = fake.calls("commentThreads")
    assert len(calls) == 3
    assert calls[0]["allThreadsRelatedToChannelId"] == OWNER_CHANNEL
    assert calls[0]["part"] == "snippet,replies"
    assert calls[0]["order"] == "time"
    assert calls[0]["textFormat"] == "plainText"
    assert calls[0]["maxResults"] == "100"
    assert "pageToken" not in calls[0] and calls[1]["pageToken"] and calls[2]["pageToken"]
    assert sink.ids == tids  # oldest first
    m = sink.messages[0]
    assert m.channel is Channel.YOUTUBE and m.tenant_id == "t1"
    assert m.external_thread_id == tids[0] and m.external_message_id == tids[0]
    assert m.external_author_id == "UCviewerChannel000000001" and m.author_name == "@viewer"
    assert m.text == "hỏi 0" and abs(m.sent_at - int(base)) <= 1
    assert m.meta["video_id"] == "vid00000001" and m.meta["is_reply"] is False


async def test_second_poll_stops_at_checkpoint(fake: FakeYouTube, make_connector):
    base = time.time() - 3600
    for i in range(250):
        fake.add_thread("vid00000001", f"c{i}", published=base + i)
    conn = make_connector(max_results=100, overlap=0.0)
    sink = await started(conn)
    await conn.poll_once()
    def listings() -> int:
        return len([q for q in fake.calls("commentThreads") if "id" not in q])

    before = listings()
    new = fake.add_thread("vid00000001", "mới", published=base + 1000)

    assert await conn.poll_once() == 1
    assert sink.ids[-1] == new
    assert listings() - before == 1  # the first page already reaches old threads


async def test_restart_with_same_store_creates_no_duplicates(fake: FakeYouTube, make_connector):
    base = time.time() - 600
    for i in range(30):
        fake.add_thread("vid00000001", f"c{i}", published=base + i)
    first = make_connector(max_results=10)
    sink1 = Sink()
    await first.start(sink1)
    await sink1.wait_count(30)
    await first.stop()

    second = make_connector(max_results=10)  # new instance, same SQL checkpoint store
    sink2 = Sink()
    await second.start(sink2)
    await until(lambda: second.stats.polls >= 3)  # two polls have ended (a poll counts as it begins)
    assert sink2.messages == []
    later = fake.add_thread("vid00000001", "sau khi khởi động lại", published=time.time())
    await sink2.wait_count(1)
    polls = second.stats.polls
    await until(lambda: second.stats.polls >= polls + 2)  # a whole poll after the one that found it
    assert sink2.ids == [later]
    assert len(sink1.ids) == len(set(sink1.ids)) == 30


async def test_replies_in_threads_including_beyond_embedded_subset(fake: FakeYouTube, make_connector):
    base = time.time() - 600
    tid = fake.add_thread("vid00000001", "top", published=base)
    rids = [fake.add_reply(tid, f"r{i}", author=f"UCreplier{i}", published=base + 10 + i) for i in range(7)]
    fake.add_reply(tid, "shop answer", author=OWNER_CHANNEL, published=base + 100)  # ours: ignored
    conn = make_connector()
    sink = await started(conn)

    assert await conn.poll_once() == 8
    assert sink.ids == [tid, *rids]
    assert fake.calls("comments")[0]["parentId"] == tid  # 8 replies > 5 embedded → comments.list
    reply = sink.messages[1]
    assert reply.external_thread_id == tid and reply.external_author_id == "UCreplier0"
    assert reply.meta["parent_id"] == tid and reply.meta["is_reply"] is True


async def test_new_reply_on_old_thread_found_by_sweep(fake: FakeYouTube, make_connector):
    old = time.time() - 7200
    tid = fake.add_thread("vid00000001", "old question", published=old)
    for i in range(20):
        fake.add_thread("vid00000001", f"newer {i}", published=old + 3000 + i)
    conn = make_connector(overlap=0.0, max_results=5)
    sink = await started(conn)
    await conn.poll_once()
    assert len(sink.messages) == 21

    rid = fake.add_reply(tid, "còn đó không shop?", author="UCcustomer")
    assert await conn.poll_once() == 1
    assert sink.ids[-1] == rid and sink.messages[-1].external_thread_id == tid
    assert any("id" in q for q in fake.calls("commentThreads"))
    assert await conn.poll_once() == 0


async def test_own_channel_comments_are_ignored(fake: FakeYouTube, make_connector):
    fake.add_thread("vid00000001", "pinned by shop", author=OWNER_CHANNEL, published=time.time() - 5)
    tid = fake.add_thread("vid00000001", "customer", published=time.time() - 4)
    conn = make_connector()
    sink = await started(conn)
    await conn.poll_once()
    assert sink.ids == [tid]


async def test_first_run_ignores_comments_older_than_lookback(fake: FakeYouTube, make_connector):
    fake.add_thread("vid00000001", "ancient", published=time.time() - 10 * 86400)
    recent = fake.add_thread("vid00000001", "recent", published=time.time() - 60)
    conn = make_connector(initial_lookback=86400.0)
    sink = await started(conn)
    await conn.poll_once()
    assert sink.ids == [recent]


async def test_video_sources_and_comments_disabled_video_is_skipped(fake: FakeYouTube, make_connector):
    fake.add_video("vidDisabled")
    fake.comments_disabled.add("vidDisabled")
    fake.add_video("vidOK")
    tid = fake.add_thread("vidOK", "ok", published=time.time() - 5)
    conn = make_connector(channel_id=None, own_channel_id=OWNER_CHANNEL, video_ids=("vidDisabled", "vidOK"))
    sink = await started(conn)
    assert await conn.poll_once() == 1
    assert sink.ids == [tid]
    assert "commentsDisabled" in (conn.stats.last_error or "")
    n = len(fake.calls("commentThreads"))
    await conn.poll_once()
    videos = [q.get("videoId") for q in fake.calls("commentThreads")[n:]]
    assert "vidDisabled" not in videos and "vidOK" in videos  # paused for source_recheck


async def test_sink_failure_keeps_progress_and_retries_rest(fake: FakeYouTube, make_connector):
    base = time.time() - 600
    tids = [fake.add_thread("vid00000001", f"c{i}", published=base + i) for i in range(6)]
    conn = make_connector()
    sink = await started(conn)
    sink.fail_after = 3
    with pytest.raises(RuntimeError, match="sink down"):
        await conn.poll_once()
    assert sink.ids == tids[:3]
    sink.fail_after = None
    assert await conn.poll_once() == 3
    assert sink.ids == tids


async def test_invalid_page_token_restarts_paging(fake: FakeYouTube, make_connector):
    base = time.time() - 600
    for i in range(4):
        fake.add_thread("vid00000001", f"c{i}", published=base + i)
    conn = make_connector(max_results=2, checkpoints=MemoryCheckpointStore())
    await started(conn)
    orig = conn._api.list_threads
    calls = 0

    async def flaky(**kw):
        nonlocal calls
        calls += 1
        if calls == 2:
            fake.fail("commentThreads", 400, "invalidPageToken")
        return await orig(**kw)

    conn._api.list_threads = flaky
    assert await conn.poll_once() == 4
    assert [("pageToken" in q) for q in fake.calls("commentThreads")[:4]] == [False, True, False, True]
