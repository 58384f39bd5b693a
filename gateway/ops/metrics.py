"""Prometheus metrics of one gateway process (its own registry: no global state).

Features add their own metrics to `Metrics.registry` (calls, recording bytes, outbox
backlog); gauges that mirror live state are read at scrape time through callbacks.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 200)


class CounterCell:
    """One labelled series of a `LoopCounter`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class HistogramCell:
    """One labelled series of a `LoopHistogram`: a count per bucket (the last one +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value


class _LoopMetric:
    """A labelled metric of the event loop's hot path, exposed by the registry at scrape time.

    prometheus_client's metrics take a lock on every increment and a histogram walks its
    buckets in Python; these add to a plain float, no lock. Only for values changed on one
    thread (the event loop's, which also serves the scrape)."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self._cells: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:  # exposed from the start, as prometheus_client's own metrics are
            self._cells[()] = self._new()
        registry.register(self)

    def _new(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: str) -> Any:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = self._new()
        return cell

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


class LoopCounter(_LoopMetric):
    def _new(self) -> CounterCell:
        return CounterCell()

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for key, cell in list(self._cells.items()):  # a copy: safe from a scrape on another thread
            fam.add_metric(list(key), cell.value)
        yield fam


class LoopHistogram(_LoopMetric):
    def __init__(self, name: str, doc: str, labelnames: Sequence[str], registry: CollectorRegistry,
                 buckets: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets if b != math.inf)
        super().__init__(name, doc, labelnames, registry)

    def _new(self) -> HistogramCell:
        return HistogramCell(self.bounds)

    def observe(self, value: float) -> None:
        """For a histogram without labels."""
        cell = self._cells.get(())
        if cell is None:
            raise ValueError(f"{self.name} has labels {self.labelnames}: observe through labels(...)")
        cell.observe(value)

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for key, cell in list(self._cells.items()):  # a copy: safe from a scrape on another thread
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, n in zip(les, cell.counts, strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            fam.add_metric(list(key), buckets, cell.sum)
        yield fam


@dataclass(frozen=True, slots=True)
class Reading:
    """A value read at scrape time, declared by a feature: a gauge, or a counter kept
    elsewhere (exposed gauge-typed, as `Metrics.counter_fn`)."""

    name: str
    help: str
    read: Callable[[], float]


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # counted per request and per message on the event loop: `LoopCounter`/`LoopHistogram`
        self.events = LoopCounter("izh_socket_events", "Socket.IO requests handled",
                                  ["namespace", "event", "outcome"], r)
        self.event_latency = LoopHistogram("izh_socket_event_seconds", "Socket.IO request handling time",
                                           ["namespace", "event"], r, LATENCY_BUCKETS)
        self.messages = LoopCounter("izh_messages_stored", "Messages stored", ["channel", "author"], r)
        # group commit (gateway/chat/appender.py): one observation per transaction
        self.append_batch_seconds = LoopHistogram(
            "izh_append_batch_seconds", "Time to write one group-committed batch of messages (its transaction)",
            [], r, LATENCY_BUCKETS)
        self.append_batch_size = LoopHistogram(
            "izh_append_batch_messages", "Messages per group-committed batch", [], r, BATCH_SIZE_BUCKETS)
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
        `labels()` call, and the hot path makes several per message. Only for label values
        from a bounded set (namespaces, handler names, error codes): the cache holds one
        child per (metric, labels) and never shrinks."""
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

    def add(self, reading: Reading) -> None:
        self.gauge(reading.name, reading.help, reading.read)

    def info(self, name: str, doc: str, **labels: str) -> None:
        """A constant 1 with `labels` (which node/worker answered this scrape)."""
        g = Gauge(name, doc, list(labels), registry=self.registry)
        g.labels(**labels).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
