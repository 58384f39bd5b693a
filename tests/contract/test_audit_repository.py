"""The `AuditRepository` contract (connectors/audit.py) on SQLite and PostgreSQL."""

from __future__ import annotations

from connectors.audit import AuditEntry, AuditRepository, SqlAuditRepository
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]


def repos(nodes: Nodes) -> tuple[AuditRepository, AuditRepository]:
    return SqlAuditRepository(nodes.stores[0]), SqlAuditRepository(nodes.stores[1])


async def test_entries_are_kept_per_tenant_newest_first(nodes: Nodes) -> None:
    a, b = repos(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    first = await a.record(AuditEntry(t1, "ch1", "facebook", "add", "cli", ("address", "credentials.app_secret"),
                                      10.0))
    assert first.id and first.fields == ("address", "credentials.app_secret")
    second = await b.record(AuditEntry(t1, "ch1", "facebook", "rotate", "agent:a1", ("credentials.app_secret",),
                                       20.0))
    third = await a.record(AuditEntry(t1, "ch2", "email", "test", "cli", ("smtp_login:failed",), 30.0))
    await b.record(AuditEntry(t2, "ch9", "zalo", "add", "cli", (), 15.0))
    assert await b.list(t1) == [third, second, first]  # what either node stored, read on either
    assert await a.list(t1, "ch1") == [second, first]
    assert await a.list(t1, limit=1) == [third]
    assert [e.action for e in await a.list(t2)] == ["add"] and (await a.list(t2))[0].fields == ()
    assert await a.list(t1, "ch-none") == []
    assert len(await a.list(t1, limit=10_000)) == 3  # capped, not refused
