"""Metrics: cached label children count into the same series as `labels()`."""

from __future__ import annotations

from gateway.metrics import Metrics


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
