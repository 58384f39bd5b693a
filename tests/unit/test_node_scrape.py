"""One /metrics for the workers of a node: samples gathered over the broker, labelled by worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from gateway.broker.base import Envelope
from gateway.broker.factory import make_broker
from gateway.broker.memory import MemoryHub
from gateway.cluster.noderpc import NodeRpc
from gateway.cluster.scrape import METHOD, NodeScrape, render, snapshot
from gateway.cluster.supervisor import WorkerIdentity
from gateway.core.hooks import Table

NODE_IDS = ["gw-w0", "gw-w1", "gw-w2"]


def _registry(messages: int, latency: float) -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("izh_messages_stored_total", "Messages stored", ["channel"], registry=r).labels("widget").inc(messages)
    Histogram("izh_event_seconds", "Handling time", buckets=(0.01, 0.1), registry=r).observe(latency)
    Gauge("izh_connections", "Open connections", registry=r).set(messages * 10)
    return r


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_render_labels_every_sample_with_its_worker_and_states_each_family_once() -> None:
    text = render({"0": snapshot(_registry(3, 0.05)), "1": snapshot(_registry(4, 0.5))}, missing=1)
    got = _samples(text)
    assert got[("izh_messages_stored_total", (("channel", "widget"), ("worker", "0")))] == 3
    assert got[("izh_messages_stored_total", (("channel", "widget"), ("worker", "1")))] == 4
    assert got[("izh_event_seconds_bucket", (("le", "0.1"), ("worker", "0")))] == 1
    assert got[("izh_event_seconds_bucket", (("le", "0.1"), ("worker", "1")))] == 0
    assert got[("izh_event_seconds_count", (("worker", "1"),))] == 1
    assert got[("izh_connections", (("worker", "1"),))] == 40
    assert got[("izh_scrape_workers_missing", ())] == 1
    lines = text.decode().splitlines()
    assert lines.count("# TYPE izh_messages_stored_total counter") == 1
    assert lines.count("# TYPE izh_event_seconds histogram") == 1


def test_render_drops_what_a_worker_sent_malformed() -> None:
    good = snapshot(_registry(1, 0.05))
    bad = [{"n": "x", "t": "gauge", "h": "h", "s": [["x", {"a": 1}, 1.0]]},  # a label value not a string
           {"n": 5}, "garbage", {"n": "y", "t": "gauge", "h": "h", "s": [["y", {}, "NaN?"]]}]
    got = _samples(render({"0": good, "1": bad}))  # type: ignore[dict-item]
    assert not any(name in ("x", "y") for name, _ in got)
    assert got[("izh_connections", (("worker", "0"),))] == 10


def test_worker_node_ids_follow_the_cli_naming() -> None:
    w = WorkerIdentity(1, 3, "/tmp/x")
    assert w.node_ids("gw-w1") == NODE_IDS


async def _worker(hub: MemoryHub, index: int, registry: CollectorRegistry) -> NodeScrape:
    broker = make_broker(None, NODE_IDS[index], hub=hub)
    methods: Table[str, Any] = Table()
    rpc = NodeRpc(broker, NODE_IDS[index], methods)

    async def deliver(channel: str, env: Envelope) -> None:
        if channel.startswith("node:"):
            await rpc.on_envelope(env)

    await broker.start(deliver)
    await rpc.start()
    # a worker has 2 s to answer: ample for one in this process on a loaded machine (the
    # test of a silent worker waits out the whole deadline)
    scrape = NodeScrape(registry, rpc, NODE_IDS, index, timeout=2.0)
    methods.add(METHOD, scrape.serve)
    return scrape


@pytest.fixture
async def workers() -> AsyncIterator[list[NodeScrape]]:
    hub = MemoryHub(wire_check=True)  # packed and unpacked, as through Redis
    ws = [await _worker(hub, i, _registry(i + 1, 0.05)) for i in range(3)]
    yield ws
    for w in ws:
        await w.rpc.close()
        await w.rpc.broker.close()


async def test_any_worker_answers_for_the_whole_node(workers: list[NodeScrape]) -> None:
    for w in workers:
        got = _samples(await w.node())
        for i in range(3):
            assert got[("izh_messages_stored_total", (("channel", "widget"), ("worker", str(i))))] == i + 1
        assert got[("izh_scrape_workers_missing", ())] == 0
    only = _samples(workers[1].worker_only())
    assert {dict(labels).get("worker") for _, labels in only if labels} == {"1"}


async def test_a_worker_that_does_not_answer_is_left_out_and_counted(workers: list[NodeScrape]) -> None:
    await workers[2].rpc.broker.close()  # gone (restarting): no reply within the deadline
    got = _samples(await workers[0].node())
    assert got[("izh_scrape_workers_missing", ())] == 1
    assert ("izh_connections", (("worker", "1"),)) in got
    assert ("izh_connections", (("worker", "2"),)) not in got
