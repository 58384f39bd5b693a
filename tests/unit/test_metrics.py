"""Metrics: cached label children count into the same series as `labels()`; the event
loop's counters and histograms expose what prometheus_client's would."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.ops.metrics import LATENCY_BUCKETS, LoopCounter, LoopHistogram, Metrics


def test_child_is_cached_and_counts_into_the_labelled_series() -> None:
    m = Metrics()
    a = m.child(m.messages, "web", "visitor")
    assert m.child(m.messages, "web", "visitor") is a
    assert m.child(m.messages, "web", "agent") is not a
    a.inc()
    m.child(m.messages, "web", "visitor").inc()
    m.messages.labels("web", "visitor").inc()
    m.child(m.event_latency, "/agent", "message:send").observe(0.002)
    text = m.render().decode()
    assert 'izh_messages_stored_total{author="visitor",channel="web"} 3.0' in text
    assert 'izh_socket_event_seconds_count{event="message:send",namespace="/agent"} 1.0' in text


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in registry.collect() if fam.name == name for s in fam.samples}


def test_loop_metrics_expose_what_prometheus_client_would() -> None:
    """The event loop's counters and histograms give the samples of prometheus_client's own
    for the same increments and observations (bucket edges, +Inf, sum, count)."""
    rng = random.Random(7)
    ours, stock = CollectorRegistry(), CollectorRegistry()
    h = LoopHistogram("t_seconds", "t", ["ns"], ours, LATENCY_BUCKETS)
    hs = Histogram("t_seconds", "t", ["ns"], registry=stock, buckets=LATENCY_BUCKETS)
    c = LoopCounter("t_events", "t", ["ns", "outcome"], ours)
    cs = Counter("t_events", "t", ["ns", "outcome"], registry=stock)
    values = [*LATENCY_BUCKETS, 0.0, 7.5, *(rng.expovariate(50) for _ in range(500))]
    for v in values:
        ns = rng.choice(["/a", "/b"])
        h.labels(ns).observe(v)
        hs.labels(ns).observe(v)
        outcome = rng.choice(["ok", "bad_request"])
        c.labels(ns, outcome).inc()
        cs.labels(ns, outcome).inc()
    c.labels("/a", "ok").inc(2.5)
    cs.labels("/a", "ok").inc(2.5)
    for name in ("t_seconds", "t_events"):
        got = _samples(ours, name)
        want = {k: v for k, v in _samples(stock, name).items() if not k[0].endswith("_created")}
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert math.isclose(got[k], v, rel_tol=1e-12), k


def test_loop_metrics_refuse_what_prometheus_client_refuses() -> None:
    r = CollectorRegistry()
    c = LoopCounter("x_total", "x", ["a"], r)
    with pytest.raises(ValueError):
        c.labels("1", "2")
    with pytest.raises(ValueError):
        c.labels("1").inc(-1)
    with pytest.raises(ValueError):  # the same name twice in one registry
        LoopCounter("x_total", "x", ["a"], r)
    with pytest.raises(ValueError):  # a labelled histogram observes through labels(...)
        LoopHistogram("z_seconds", "z", ["a"], r, (0.1,)).observe(0.5)
    h = LoopHistogram("y_seconds", "y", [], r, (0.1, 1.0))  # no labels: exposed before any observation
    assert r.get_sample_value("y_seconds_count") == 0.0
    h.observe(0.5)
    assert r.get_sample_value("y_seconds_bucket", {"le": "0.1"}) == 0.0
    assert r.get_sample_value("y_seconds_bucket", {"le": "1.0"}) == 1.0
    assert r.get_sample_value("y_seconds_bucket", {"le": "+Inf"}) == 1.0
