"""Create N tenants (one admin agent each) in the gateway's store: `python -m bench.tenants N`.

Prints one JSON list of {"widget_key", "admin_token"}. Uses the same environment as the
gateway (DATA_DIR, or DATABASE_URL/DATABASE_SCHEMA). Workload (b) gives each of its small
rooms its own tenant, as a helpdesk with many small businesses has.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from gateway.admin.tenants import create_tenant
from gateway.config import load_config
from gateway.store.factory import open_store


async def make(n: int) -> list[dict[str, str]]:
    config = load_config()
    if not config.storage.database_url:
        os.makedirs(config.storage.data_dir, exist_ok=True)
    store = await open_store(config.storage.database_url, sqlite_path=config.sqlite_path,
                             schema=config.storage.database_schema)
    try:
        out = []
        for i in range(n):
            nt = await create_tenant(store, f"Bench {i}", now=time.time())
            out.append({"widget_key": nt.tenant.widget_key, "admin_token": nt.admin_token})
        return out
    finally:
        await store.close()


def main() -> int:
    print(json.dumps(asyncio.run(make(int(sys.argv[1])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
