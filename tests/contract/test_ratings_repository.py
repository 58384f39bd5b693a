"""The ratings' repository — `RatingRepository` (gateway/ratings/store.py) — on SQLite and
PostgreSQL (the `backend` / `store` fixtures of the core store's contract suite)."""

from __future__ import annotations

from dataclasses import replace

from gateway.ratings.store import MAX_LIST, Rating, RatingRepository, RatingStore
from tests.contract.test_store_contract import World, backend, new_world, store
from tests.support.sqldb import StoreDatabase

__all__ = ["backend", "store"]


def repo_on(db: StoreDatabase) -> RatingRepository:
    return RatingStore(db)


def rating(w: World, seq: int, score: int = 5, *, comment: str | None = "Rất tốt 👍", at: float = 300.0) -> Rating:
    return Rating(tenant_id=w.tenant.id, conversation_id=w.conv.id, seq=seq, contact_id=w.contact.id,
                  agent_id=None, score=score, comment=comment, created_at=at)


async def test_a_rating_round_trips(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = repo_on(store)
    r = rating(w, 3)
    assert await repo.add(r) is True
    assert await repo.for_conversation(w.tenant.id, w.conv.id) == [r]
    no_comment = replace(rating(w, 4, 1, comment=None), agent_id="a" * 32)
    assert await repo.add(no_comment) is True
    assert await repo.for_conversation(w.tenant.id, w.conv.id) == [r, no_comment]


async def test_one_rating_per_resolution_the_first_stays(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = repo_on(store)
    first = rating(w, 3, 2)
    assert await repo.add(first) is True
    assert await repo.add(rating(w, 3, 5, comment="changed my mind", at=400.0)) is False
    assert await repo.for_conversation(w.tenant.id, w.conv.id) == [first]
    later = rating(w, 7, 5, at=500.0)  # resolved again after new messages
    assert await repo.add(later) is True
    assert [x.seq for x in await repo.for_conversation(w.tenant.id, w.conv.id)] == [3, 7]


async def test_ratings_are_scoped_to_the_tenant(store: StoreDatabase) -> None:
    w, other = await new_world(store), await new_world(store, "Other")
    repo = repo_on(store)
    mine = rating(w, 1)
    await repo.add(mine)
    # the same conversation id and resolution in another tenant is another rating
    theirs = replace(mine, tenant_id=other.tenant.id, contact_id=other.contact.id, score=1)
    assert await repo.add(theirs) is True
    assert await repo.for_conversation(w.tenant.id, w.conv.id) == [mine]
    assert await repo.recent(other.tenant.id, 10) == [theirs]
    assert await repo.for_conversation(other.tenant.id, other.conv.id) == []


async def test_recent_is_newest_first_and_bounded(store: StoreDatabase) -> None:
    w = await new_world(store)
    repo = repo_on(store)
    rows = [rating(w, seq, 1 + seq % 5, at=1000.0 + seq) for seq in range(1, 6)]
    for r in rows:
        await repo.add(r)
    assert await repo.recent(w.tenant.id, 3) == rows[::-1][:3]
    assert await repo.recent(w.tenant.id, 0) == []
    assert len(await repo.recent(w.tenant.id, MAX_LIST + 10)) == 5
