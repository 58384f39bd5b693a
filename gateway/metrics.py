"""Prometheus metrics of one gateway process (its own registry: no global state).

Features add their own metrics to `Metrics.registry` (calls, recording bytes, outbox
backlog); gauges that mirror live state are read at scrape time through callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 200)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("izh_socket_events_total", "Socket.IO requests handled",
                              ["namespace", "event", "outcome"], registry=r)
        self.event_latency = Histogram("izh_socket_event_seconds", "Socket.IO request handling time",
                                       ["namespace", "event"], buckets=LATENCY_BUCKETS, registry=r)
        self.messages = Counter("izh_messages_stored_total", "Messages stored", ["channel", "author"], registry=r)
        # group commit (gateway/chat/appender.py): one observation per transaction
        self.append_batch_seconds = Histogram(
            "izh_append_batch_seconds", "Time to write one group-committed batch of messages (its transaction)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.append_batch_size = Histogram(
            "izh_append_batch_messages", "Messages per group-committed batch", buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.connects = Counter("izh_connections_total", "Socket.IO connections accepted", ["namespace"],
                                registry=r)
        self.refusals = Counter("izh_connections_refused_total", "Socket.IO handshakes refused",
                                ["namespace", "code"], registry=r)
        self.rate_limited = Counter("izh_rate_limited_total", "Requests refused by a rate limit", ["limit"],
                                    registry=r)
        self.http_requests = Counter("izh_http_requests_total", "REST requests", ["method", "status"], registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached: prometheus_client validates and locks on every
        `labels()` call (~2 % of a node's CPU at three calls per message). Only for label
        values from a bounded set (namespaces, handler names, error codes)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read at scrape time."""
        g = Gauge(name, doc, registry=self.registry)
        g.set_function(read)

    def counter_fn(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A monotonically growing value kept elsewhere, exposed as a gauge-typed counter."""
        self.gauge(name, doc, read)

    def info(self, name: str, doc: str, **labels: str) -> None:
        """A constant 1 with `labels` (which node/worker answered this scrape)."""
        g = Gauge(name, doc, list(labels), registry=self.registry)
        g.labels(**labels).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
