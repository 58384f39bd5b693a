"""The `SearchRepository` contract (gateway/search/store.py), run on SQLite (FTS5) and
PostgreSQL (GIN over the folded text): the `backend` / `store` fixtures of the core
store's contract suite."""

from __future__ import annotations

import pytest

from gateway.core.domain import AuthorType, Channel, NewMessage
from gateway.search.fold import fold, query_terms
from gateway.search.store import SearchRepository, SearchStore
from gateway.store.migrations import load_migrations
from tests.contract.test_store_contract import Backend, World, backend, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def repo_on(backend: Backend, db: StoreDatabase) -> SearchRepository:
    return SearchStore(db, sqlite=backend.kind == "sqlite")


async def say(store: StoreDatabase, w: World, text: str, now: float) -> str:
    res = await store.append_message(w.tenant.id, w.conv.id,
                                     NewMessage(author_type=AuthorType.CONTACT, author_id=None, text=text), now=now)
    return res.message.id


async def found(repo: SearchRepository, w: World, query: str) -> list[str]:
    return [h.text for h in await repo.search_messages(w.tenant.id, query_terms(query), limit=50)]


async def test_vietnamese_is_found_with_and_without_diacritics(backend: Backend, store: StoreDatabase) -> None:
    repo = repo_on(backend, store)
    w = await new_world(store)
    await say(store, w, "Tôi ở Hà Nội", 1.0)
    await say(store, w, "Đà Nẵng đẹp lắm", 2.0)
    await say(store, w, "Hanoi is one word", 3.0)
    for q in ("ha noi", "hà nội", "HÀ NỘI", "Ha Noi!"):
        assert await found(repo, w, q) == ["Tôi ở Hà Nội"], q
    for q in ("da nang", "đà nẵng", "DA NANG", "dep"):
        assert await found(repo, w, q) == ["Đà Nẵng đẹp lắm"], q
    assert await found(repo, w, "hanoi") == ["Hanoi is one word"]
    assert await found(repo, w, "noi ha") == ["Tôi ở Hà Nội"]  # every term, any order
    assert await found(repo, w, "ha xyz") == []


async def test_the_last_term_is_a_prefix_the_others_whole_words(backend: Backend, store: StoreDatabase) -> None:
    repo = repo_on(backend, store)
    w = await new_world(store)
    await say(store, w, "giao hàng nhanh", 1.0)
    assert await found(repo, w, "giao ha") == ["giao hàng nhanh"]
    assert await found(repo, w, "gia hang") == []
    assert await found(repo, w, "e-mail: giao@hang.vn") == []  # punctuation separates words
    await say(store, w, "write to lan@example.com", 2.0)
    assert await found(repo, w, "example") == ["write to lan@example.com"]
    assert await found(repo, w, "lan example com") == ["write to lan@example.com"]


async def test_tenants_are_apart_and_pages_follow_the_cursor(backend: Backend, store: StoreDatabase) -> None:
    repo = repo_on(backend, store)
    w = await new_world(store, "A")
    other = await new_world(store, "B")
    await say(store, other, "hello from B", 1.0)
    ids = [await say(store, w, f"hello number {i}", 10.0 + i // 2) for i in range(7)]  # ties on created_at
    seen: list[str] = []
    after = None
    while True:
        page = await repo.search_messages(w.tenant.id, ["hello"], limit=3, after=after)
        if not page:
            break
        seen += [h.id for h in page]
        after = (page[-1].created_at, page[-1].id)
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    hits = await repo.search_messages(w.tenant.id, ["hello"], limit=50)
    assert [(h.created_at, h.id) for h in hits] == sorted(((h.created_at, h.id) for h in hits), reverse=True)
    assert all(h.conversation_id == w.conv.id and h.contact_id == w.contact.id and h.contact_name == "Visitor"
               for h in hits)
    assert {h.seq for h in hits} == set(range(1, 8))
    assert [h.text for h in await repo.search_messages(other.tenant.id, ["hello"], limit=50)] == ["hello from B"]


async def test_erased_and_deleted_text_is_not_found(backend: Backend, store: StoreDatabase) -> None:
    repo = repo_on(backend, store)
    w = await new_world(store)
    await say(store, w, "secret passport number", 1.0)
    keep = await say(store, w, "passport office hours", 2.0)
    async with store.transaction() as conn:  # what the privacy erasure and retention do
        await conn.execute("UPDATE messages SET text = '' WHERE tenant_id = $1 AND text LIKE 'secret%'", w.tenant.id)
    assert await found(repo, w, "passport") == ["passport office hours"]
    assert await found(repo, w, "secret") == []
    async with store.transaction() as conn:  # an edit
        await conn.execute("UPDATE messages SET text = 'visa office' WHERE id = $1", keep)
    assert await found(repo, w, "passport") == []
    assert await found(repo, w, "visa") == ["visa office"]
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM messages WHERE id = $1", keep)
    assert await found(repo, w, "visa") == []


async def test_contacts_by_name_email_and_phone(backend: Backend, store: StoreDatabase) -> None:
    repo = repo_on(backend, store)
    w = await new_world(store)
    lan = await store.create_contact(tenant_id=w.tenant.id, name="Nguyễn Thị Lan", email="lan.nguyen@example.vn",
                                     phone="+84 912-345 678", now=5.0)
    other = await new_world(store, "B")
    await store.create_contact(tenant_id=other.tenant.id, name="Nguyễn Văn Lan", email=None, now=6.0)

    async def names(q: str) -> list[str | None]:
        return [c.name for c in await repo.search_contacts(w.tenant.id, query_terms(q), limit=10)]

    for q in ("nguyen lan", "Nguyễn", "lan.nguyen", "example", "84912345678", "912", "nguy"):
        assert await names(q) == ["Nguyễn Thị Lan"], q
    assert await names("visitor") == ["Visitor"]
    assert await names("nguyen van") == []  # the other tenant's contact
    await store.update_contact(w.tenant.id, lan.id, {"name": "Trần Lan", "phone": None})
    assert await names("nguyen") == ["Trần Lan"]  # still in the e-mail
    assert await names("tran") == ["Trần Lan"]
    assert await names("912") == []
    page1 = await repo.search_contacts(w.tenant.id, ["lan"], limit=1)
    page2 = await repo.search_contacts(w.tenant.id, ["lan"], limit=1, after=(page1[0].created_at, page1[0].id))
    assert [c.name for c in page1 + page2] == ["Trần Lan"]


async def test_a_channel_conversation_and_empty_terms(backend: Backend, store: StoreDatabase) -> None:
    repo = repo_on(backend, store)
    w = await new_world(store)
    conv = await store.create_conversation(tenant_id=w.tenant.id, channel=Channel.EMAIL, contact_id=w.contact.id,
                                           now=1.0, external_thread_id="t1")
    await store.append_message(w.tenant.id, conv.id, NewMessage(author_type=AuthorType.AGENT, author_id=None,
                                                                text="Xin chào quý khách"), now=3.0)
    hits = await repo.search_messages(w.tenant.id, query_terms("xin chao"), limit=5)
    assert [(h.conversation_id, h.author_type) for h in hits] == [(conv.id, AuthorType.AGENT)]
    assert await repo.search_messages(w.tenant.id, [], limit=5) == []
    assert await repo.search_contacts(w.tenant.id, [], limit=5) == []



VIETNAMESE = "àáạảãâầấậẩẫăằắặẳẵèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹđ"


async def test_every_vietnamese_letter_folds_as_the_query_does(backend: Backend, store: StoreDatabase) -> None:
    """The engine's folding (FTS5's tokenizer fed d for đ; PostgreSQL's izh_fold) agrees
    with `fold`, the query's, on every Vietnamese letter in both cases."""
    repo = repo_on(backend, store)
    w = await new_world(store)
    letters = VIETNAMESE + VIETNAMESE.upper()
    for i, c in enumerate(letters):
        await say(store, w, f"x{c}q{i}z", float(i))
    for i, c in enumerate(letters):
        hits = await repo.search_messages(w.tenant.id, [f"x{fold(c)}q{i}z"], limit=2)
        assert [h.text for h in hits] == [f"x{c}q{i}z"], c
    if backend.kind == "postgres":
        async with store.reader() as conn:
            for c in letters:
                row = await conn.fetchrow("SELECT izh_fold($1) AS f", c)
                assert row is not None and row["f"] == fold(c), c
            row = await conn.fetchrow("SELECT izh_fold($1) AS f", "Lan@Ex-ample.vn/a_b:c")
            assert row is not None and row["f"].split() == ["lan", "ex", "ample", "vn", "a", "b", "c"]


async def test_the_recent_window_and_the_index_give_the_same_pages(backend: Backend, store: StoreDatabase) -> None:
    """PostgreSQL tests a tenant's newest messages one by one before asking the index: with
    a window of 3 messages, pages (common and rare words, first and later pages) are what
    the index alone gives."""
    narrow = SearchStore(store, sqlite=backend.kind == "sqlite", recent_window=3)
    wide = SearchStore(store, sqlite=backend.kind == "sqlite", recent_window=10_000)
    w = await new_world(store)
    for i in range(30):
        await say(store, w, ("hàng mới " if i % 2 else "") + ("hiếm " if i % 7 == 0 else "") + f"số {i}",
                  float(i // 3))
    for terms in (["hang"], ["hiem"], ["so"], ["moi", "hang"], ["hiem", "so"]):
        for limit in (1, 2, 5, 50):
            after = None
            for _ in range(40):
                a = await narrow.search_messages(w.tenant.id, terms, limit=limit, after=after)
                b = await wide.search_messages(w.tenant.id, terms, limit=limit, after=after)
                assert [h.id for h in a] == [h.id for h in b], (terms, limit, after)
                if len(a) < limit:
                    break
                after = (a[-1].created_at, a[-1].id)


async def test_messages_stored_before_the_search_migrations_are_found(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages stored before 0013 (SQLite: its FTS tables filled from them), before 0018
    (PostgreSQL: the generated column computed for them) and before 0019 (SQLite: indexed
    by 0013's trigger, the queue begins empty) are found after migrating."""
    import gateway.store.sql as sql_module

    for before in (13, 18, 19):
        older = [m for m in load_migrations() if m.version < before]
        monkeypatch.setattr(sql_module, "load_migrations", lambda older=older: older)
        store = backend.make()
        await store.open()
        try:
            await store.migrate()
            w = await new_world(store, f"Old {before}")
            await say(store, w, f"Hà Nội trước {before}", 1.0)
            monkeypatch.undo()
            await store.migrate()
            repo = repo_on(backend, store)
            assert await found(repo, w, f"ha noi truoc {before}") == [f"Hà Nội trước {before}"]
            await say(store, w, f"Hà Nội sau {before}", 2.0)
            assert await found(repo, w, "ha noi") == [f"Hà Nội sau {before}", f"Hà Nội trước {before}"]
        finally:
            await store.close()


async def test_catch_up_indexes_in_batches_and_leaves_erased_text_out(backend: Backend, store: StoreDatabase) -> None:
    """`catch_up` indexes what was stored since (SQLite: the queue, `index_batch` rows a
    transaction), then has nothing to do; a message erased before it was indexed is never
    found; a search catches up by itself."""
    repo = SearchStore(store, sqlite=backend.kind == "sqlite", index_batch=2)
    w = await new_world(store)
    await repo.catch_up()
    for i in range(5):
        await say(store, w, f"queued message {i}", 1.0 + i)
    erased = await say(store, w, "queued secret", 9.0)
    async with store.transaction() as conn:
        await conn.execute("UPDATE messages SET text = '' WHERE id = $1", erased)
    done = await repo.catch_up()
    assert done == (6 if backend.kind == "sqlite" else 0)  # the erased one taken off the queue, unindexed
    assert await repo.catch_up() == 0
    assert await found(repo, w, "queued") == [f"queued message {i}" for i in reversed(range(5))]
    assert await found(repo, w, "secret") == []
    await say(store, w, "queued later", 20.0)
    assert (await found(repo, w, "later")) == ["queued later"]  # no catch_up called: the search did
    assert await repo.catch_up() == 0
