"""One `/metrics` for a whole node of several workers.

The kernel hands each scrape to any worker of the node (`SO_REUSEPORT`), so a worker that
answered only for itself would make every counter jump between the workers' values from
one scrape to the next. The worker that gets the scrape asks its siblings for their
samples over the broker (`gateway/cluster/noderpc.py`, method `metrics`) and answers for all of
them, each sample labelled `worker="<index>"`; a sibling that does not answer within the
deadline is left out and counted in `izh_scrape_workers_missing`. `/metrics?scope=worker`
answers for the receiving worker alone (with the same label).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from gateway.cluster.noderpc import NodeRpc

log = logging.getLogger(__name__)

METHOD = "metrics"
WORKER_LABEL = "worker"
# One family as it travels between workers: name, type, help, [[sample name, labels, value]].
Family = dict[str, Any]


def snapshot(registry: CollectorRegistry) -> list[Family]:
    """The registry's samples as plain data (what msgpack carries)."""
    out: list[Family] = []
    for m in registry.collect():
        out.append({"n": m.name, "t": m.type, "h": m.documentation,
                    "s": [[s.name, dict(s.labels), float(s.value)] for s in m.samples]})
    return out


class _Merged:
    """A collector over families of several workers, each sample labelled with its worker."""

    def __init__(self, parts: Mapping[str, Sequence[Family]], missing: int) -> None:
        self._parts = parts
        self._missing = missing

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for worker, fams in self._parts.items():
            for f in fams:
                if not _valid_family(f):
                    continue
                m = families.get(f["n"])
                if m is None:
                    m = families[f["n"]] = Metric(f["n"], f["h"], f["t"])
                elif m.type != f["t"]:
                    continue  # the workers disagree (a rolling upgrade): keep the first
                for name, labels, value in f["s"]:
                    m.add_sample(name, {**labels, WORKER_LABEL: worker}, value)
        yield from families.values()
        gauge = Metric("izh_scrape_workers_missing", "Workers of this node that did not answer this scrape in time",
                       "gauge")
        gauge.add_sample("izh_scrape_workers_missing", {}, float(self._missing))
        yield gauge


def _valid_family(f: Any) -> bool:
    if not (isinstance(f, dict) and isinstance(f.get("n"), str) and isinstance(f.get("t"), str)
            and isinstance(f.get("h"), str) and isinstance(f.get("s"), list)):
        return False
    for s in f["s"]:
        if not (isinstance(s, list) and len(s) == 3 and isinstance(s[0], str) and isinstance(s[1], dict)
                and isinstance(s[2], (int, float)) and all(isinstance(v, str) for v in s[1].values())):
            return False
    return True


def render(parts: Mapping[str, Sequence[Family]], missing: int = 0) -> bytes:
    """Prometheus text for the families of several workers (`parts`: worker label → families)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(parts, missing))
    return generate_latest(registry)


class NodeScrape:
    """The node-wide scrape of worker `index` of `count`; `node_ids[i]` is worker i's node id.
    Each worker answers its siblings' `METHOD` requests with `serve` (a node RPC method the
    assembly declares)."""

    def __init__(self, registry: CollectorRegistry, rpc: NodeRpc, node_ids: Sequence[str], index: int,
                 *, timeout: float = 2.0) -> None:
        self.registry = registry
        self.rpc = rpc
        self.node_ids = list(node_ids)
        self.index = index
        self.count = len(self.node_ids)
        self.timeout = timeout

    async def serve(self, tenant_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"families": snapshot(self.registry)}

    def worker_only(self) -> bytes:
        return render({str(self.index): snapshot(self.registry)})

    async def node(self) -> bytes:
        siblings = [i for i in range(self.count) if i != self.index]
        replies = await asyncio.gather(*(self._ask(i) for i in siblings))
        parts: dict[str, Sequence[Family]] = {str(self.index): snapshot(self.registry)}
        for i, fams in zip(siblings, replies, strict=True):
            if fams is not None:
                parts[str(i)] = fams
        return render(dict(sorted(parts.items(), key=lambda kv: int(kv[0]))), missing=self.count - len(parts))

    async def _ask(self, i: int) -> list[Family] | None:
        node = self.node_ids[i]
        try:
            reply = await asyncio.wait_for(self.rpc.call(node, METHOD, "", {}), self.timeout)
        except Exception as exc:  # a worker restarting, the broker away: scrape what answered
            log.info("metrics of %s not collected: %s", node, type(exc).__name__)
            return None
        fams = reply.get("families")
        return fams if isinstance(fams, list) else None
