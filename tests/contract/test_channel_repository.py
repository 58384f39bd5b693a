"""The `ChannelRepository` contract (connectors/channels.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from itertools import count

import pytest

from connectors.channels import ChannelConfig, ChannelError, ChannelRepository, ChannelStore
from gateway.core.domain import Channel
from gateway.security.crypto import MasterKeyError, SecretBox
from tests.contract.repository_backends import Nodes, nodes

__all__ = ["nodes"]

KEY = SecretBox(b"\x05" * 32)


def repo(nodes: Nodes, node: int = 0, box: SecretBox = KEY) -> ChannelRepository:
    ticks = count(1000)
    return ChannelStore(nodes.stores[node], box, lambda: float(next(ticks)))


async def add(channels: ChannelRepository, tenant_id: str, kind: Channel = Channel.EMAIL, address: str | None = None,
              **kw: object) -> ChannelConfig:
    settings = {} if address is None else {"address": address}
    return await channels.add(tenant_id=tenant_id, kind=kind, name=f"inbox {address}", credentials={"k": address},
                              settings=settings, **kw)  # type: ignore[arg-type]


async def test_add_normalises_the_address_and_get_reads_it_back(nodes: Nodes) -> None:
    channels = repo(nodes)
    t = await nodes.tenant()
    ch = await channels.add(tenant_id=t, kind=Channel.EMAIL, name="  Hỗ trợ ", credentials={"password": "p"},
                            settings={"address": " Support@Shop.VN ", "smtp_port": 587})
    assert (ch.tenant_id, ch.kind, ch.name, ch.address, ch.enabled) == (t, Channel.EMAIL, "Hỗ trợ", "support@shop.vn",
                                                                        True)
    assert ch.settings == {"address": " Support@Shop.VN ", "smtp_port": 587}
    assert await channels.get(t, ch.id) == ch
    assert await repo(nodes, 1).get(t, ch.id) == ch  # another node reads the same inbox
    other = await add(channels, t, Channel.FACEBOOK, "Page-ID")
    assert other.address == "Page-ID"  # only email addresses are case-folded
    assert other.id != ch.id


async def test_a_tenant_sees_only_its_own_inboxes(nodes: Nodes) -> None:
    channels = repo(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    ch = await add(channels, t1, address="a@x")
    assert await channels.get(t2, ch.id) is None
    assert await channels.list(t2) == []
    assert await channels.for_tenant(t2, Channel.EMAIL) is None
    assert await channels.for_tenant(t2, Channel.EMAIL, ch.id) is None
    await channels.set_enabled(t2, ch.id, False)  # not t2's: nothing happens
    assert (await channels.get(t1, ch.id)).enabled  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        await channels.update_credentials(t2, ch.id, {"x": 1})
    assert await channels.credentials(ch) == {"k": "a@x"}


async def test_not_found(nodes: Nodes) -> None:
    channels = repo(nodes)
    t = await nodes.tenant()
    assert await channels.get(t, "nope") is None
    assert await channels.list(t) == []
    assert await channels.find_by_address(Channel.EMAIL, "a@x") is None
    assert await channels.find_by_address(Channel.EMAIL, "  ") is None
    assert await channels.for_tenant(t, Channel.EMAIL) is None
    with pytest.raises(LookupError):
        await channels.update_credentials(t, "nope", {"x": 1})
    ghost = ChannelConfig(id="nope", tenant_id=t, kind=Channel.EMAIL, name="n", address=None, enabled=True,
                          created_at=0.0)
    assert await channels.credentials(ghost) == {}


async def test_list_is_oldest_first_and_filters_by_kind(nodes: Nodes) -> None:
    channels = repo(nodes)
    t = await nodes.tenant()
    a = await add(channels, t, Channel.EMAIL, "a@x")
    b = await add(channels, t, Channel.FACEBOOK, "p1")
    c = await add(channels, t, Channel.EMAIL, "c@x", enabled=False)
    assert [x.id for x in await channels.list(t)] == [a.id, b.id, c.id]
    assert [x.id for x in await channels.list(t, Channel.EMAIL)] == [a.id, c.id]
    assert await channels.list(t, Channel.ZALO) == []


async def test_address_is_unique_per_kind_across_tenants(nodes: Nodes) -> None:
    channels = repo(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    await add(channels, t1, Channel.EMAIL, "support@shop.vn")
    with pytest.raises(ChannelError, match="already uses address"):
        await add(channels, t2, Channel.EMAIL, "SUPPORT@shop.vn")
    assert await channels.list(t2) == []  # nothing stored
    await add(channels, t2, Channel.FACEBOOK, "support@shop.vn")  # another kind may use it
    await add(channels, t1, Channel.EMAIL)  # inboxes without an address do not collide
    await add(channels, t1, Channel.EMAIL)
    assert len(await channels.list(t1, Channel.EMAIL)) == 3


@pytest.mark.parametrize("kind, name, settings, credentials", [
    (Channel.WIDGET, "w", {}, {}),
    (Channel.CALL, "c", {}, {}),
    (Channel.EMAIL, "   ", {}, {}),
    (Channel.EMAIL, "x" * 201, {}, {}),
    (Channel.EMAIL, "big settings", {"blob": "x" * 17_000}, {}),
    (Channel.EMAIL, "big credentials", {}, {"blob": "x" * 17_000}),
])
async def test_invalid_inboxes_are_refused_and_not_stored(nodes: Nodes, kind: Channel, name: str,
                                                         settings: dict[str, str], credentials: dict[str, str]) -> None:
    channels = repo(nodes)
    t = await nodes.tenant()
    with pytest.raises(ChannelError):
        await channels.add(tenant_id=t, kind=kind, name=name, credentials=credentials, settings=settings)
    assert await channels.list(t) == []


async def test_routing_and_polling_see_only_enabled_inboxes_of_every_tenant(nodes: Nodes) -> None:
    channels = repo(nodes)
    t1, t2 = await nodes.tenant(), await nodes.tenant("Other")
    a = await add(channels, t1, Channel.EMAIL, "a@x")
    b = await add(channels, t2, Channel.EMAIL, "b@x")
    await add(channels, t2, Channel.FACEBOOK, "p1")
    assert await channels.find_by_address(Channel.EMAIL, "B@X") == b
    assert await channels.find_by_address(Channel.FACEBOOK, "b@x") is None
    assert [x.id for x in await channels.list_enabled(Channel.EMAIL)] == [a.id, b.id]
    await channels.set_enabled(t2, b.id, False)
    assert await channels.find_by_address(Channel.EMAIL, "b@x") is None
    assert [x.id for x in await channels.list_enabled(Channel.EMAIL)] == [a.id]
    assert [x.enabled for x in await channels.list(t2, Channel.EMAIL)] == [False]  # still listed for its tenant
    await channels.set_enabled(t2, b.id, True)
    assert (await channels.find_by_address(Channel.EMAIL, "b@x")) is not None


async def test_for_tenant_picks_the_named_or_the_oldest_enabled_inbox(nodes: Nodes) -> None:
    channels = repo(nodes)
    t = await nodes.tenant()
    a = await add(channels, t, Channel.EMAIL, "a@x", enabled=False)
    b = await add(channels, t, Channel.EMAIL, "b@x")
    c = await add(channels, t, Channel.EMAIL, "c@x")
    fb = await add(channels, t, Channel.FACEBOOK, "p1")
    assert await channels.for_tenant(t, Channel.EMAIL) == b
    assert await channels.for_tenant(t, Channel.EMAIL, c.id) == c
    assert await channels.for_tenant(t, Channel.EMAIL, a.id) is None  # disabled
    assert await channels.for_tenant(t, Channel.EMAIL, fb.id) is None  # another kind
    assert await channels.for_tenant(t, Channel.FACEBOOK) == fb


async def test_credentials_are_sealed_and_open_only_under_their_key(nodes: Nodes) -> None:
    channels = repo(nodes)
    t = await nodes.tenant()
    ch = await channels.add(tenant_id=t, kind=Channel.EMAIL, name="n", credentials={"password": "p@ss-123"},
                            settings={})
    async with nodes.db.reader() as conn:
        raw = await conn.fetchrow("SELECT credentials FROM connector_channels WHERE id = $1", ch.id)
    assert raw is not None and "p@ss-123" not in raw["credentials"]
    assert await repo(nodes, 1).credentials(ch) == {"password": "p@ss-123"}
    with pytest.raises(MasterKeyError):
        await repo(nodes, 1, SecretBox(b"\x06" * 32)).credentials(ch)


async def test_update_credentials_merges_and_concurrent_updates_all_land(nodes: Nodes) -> None:
    a, b = repo(nodes, 0), repo(nodes, 1)
    t = await nodes.tenant()
    ch = await a.add(tenant_id=t, kind=Channel.ZALO, name="oa", credentials={"secret": "s", "token": "t0"},
                     settings={"address": "oa1"})
    await a.update_credentials(t, ch.id, {"token": "t1"})
    assert await b.credentials(ch) == {"secret": "s", "token": "t1"}
    await asyncio.gather(*(node.update_credentials(t, ch.id, {f"k{i}": i}) for i in range(6)
                           for node in [(a, b)[i % 2]]))
    assert await a.credentials(ch) == {"secret": "s", "token": "t1", **{f"k{i}": i for i in range(6)}}


async def test_redefine_replaces_name_and_settings_and_moves_the_address(nodes: Nodes) -> None:
    channels = repo(nodes)
    t, other = await nodes.tenant(), await nodes.tenant("Other")
    ch = await add(channels, t, address="old@x")
    taken = await add(channels, other, address="taken@x")
    moved = await channels.redefine(t, ch.id, name="Renamed", settings={"address": "New@X"})
    assert moved is not None
    assert (moved.name, moved.address, moved.settings) == ("Renamed", "new@x", {"address": "New@X"})
    assert await repo(nodes, 1).get(t, ch.id) == moved  # another node reads the change
    assert await channels.find_by_address(Channel.EMAIL, "old@x") is None
    assert (await channels.find_by_address(Channel.EMAIL, "new@x")) == moved
    with pytest.raises(ChannelError):
        await channels.redefine(t, ch.id, name="x", settings={"address": "taken@x"})  # another inbox's address
    with pytest.raises(ChannelError):
        await channels.redefine(t, ch.id, name=" ", settings={})
    assert await channels.get(t, ch.id) == moved  # nothing changed by a refusal
    assert await channels.redefine(other, ch.id, name="x", settings={}) is None  # not the other tenant's
    assert await channels.redefine(t, "nope", name="x", settings={}) is None
    assert await channels.get(other, taken.id) == taken


async def test_remove_deletes_only_the_tenants_inbox(nodes: Nodes) -> None:
    channels = repo(nodes)
    t, other = await nodes.tenant(), await nodes.tenant("Other")
    ch = await add(channels, t, address="a@x")
    assert await channels.remove(other, ch.id) is False  # another tenant's: untouched
    assert await channels.get(t, ch.id) == ch
    assert await channels.remove(t, ch.id) is True
    assert await repo(nodes, 1).get(t, ch.id) is None
    assert await channels.find_by_address(Channel.EMAIL, "a@x") is None
    assert await channels.remove(t, ch.id) is False
    again = await add(channels, t, address="a@x")  # the address is free again
    assert again.id != ch.id
