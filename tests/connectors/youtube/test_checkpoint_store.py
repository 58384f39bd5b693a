"""SqlCheckpointStore on every backend (SQLite; PostgreSQL with -m postgres available)."""

from __future__ import annotations

import os

from connectors.youtube import Checkpoint, SqlCheckpointStore
from gateway.config import Config
from gateway.store.factory import open_store


async def test_checkpoint_roundtrip_upsert_and_tenant_scope(cx_config: Config):
    st = cx_config.storage
    store = await open_store(st.database_url, sqlite_path=os.path.join(st.data_dir, "cp.sqlite3"),
                             schema=st.database_schema)
    try:
        cps = SqlCheckpointStore(store, clock=lambda: 1.0)
        assert await cps.load("t1", "channel:UC1") is None
        cp = Checkpoint(high_water=100.5, floor=10.0)
        cp.mark_seen("a", cap=3)
        cp.track("th1", 2, cap=10)
        await cps.save("t1", "channel:UC1", cp)
        for cid in ("b", "c", "d"):
            cp.mark_seen(cid, cap=3)
        cp.high_water = 200.0
        await cps.save("t1", "channel:UC1", cp)  # upsert

        got = await cps.load("t1", "channel:UC1")
        assert got is not None
        assert got.high_water == 200.0 and got.floor == 10.0
        assert got.seen == ["b", "c", "d"] and not got.has_seen("a") and got.has_seen("d")
        assert got.threads == {"th1": 2}
        assert await cps.load("t2", "channel:UC1") is None  # tenant scoped
        await cps.delete_tenant("t1")
        assert await cps.load("t1", "channel:UC1") is None
    finally:
        await store.close()


def test_checkpoint_json_tolerates_garbage() -> None:
    assert Checkpoint.from_json("[]") == Checkpoint()
    cp = Checkpoint.from_json('{"high_water": "x", "seen": ["a", 1], "threads": {"t": "2", "u": 3}}')
    assert cp.high_water is None and cp.seen == ["a"] and cp.threads == {"u": 3}
