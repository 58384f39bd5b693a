"""The admission feature: rate limits and connection caps (gateway/admission/limits.py,
gateway/admission/guard.py), shared by a node's workers (gateway/admission/shared_limits.py)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.admission.guard import Guard
from gateway.admission.limits import LIMITS_KEY, Limits, upload_limit_middleware
from gateway.admission.shared_limits import node_limits
from gateway.extension import Command, Extension, Host, SealedColumn
from gateway.ops.metrics import Reading


class AdmissionFeature:
    name = "admission"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        cfg = host.config
        m = host.metrics
        limits = Limits(cfg.limits, on_limited=lambda name: m.rate_limited.labels(name).inc())
        node = node_limits(limits, cfg.limits.max_connections_per_ip, redis_url=cfg.storage.redis_url,
                           prefix=cfg.storage.redis_prefix, node_id=host.node_id,
                           worker_node_ids=host.worker.node_ids(host.node_id) if host.worker else None,
                           scope=cfg.limits.scope)
        metrics = [Reading("izh_rate_limit_buckets", "Live rate-limit buckets and per-IP connection counters",
                           lambda: limits.bucket_count() + len(node.connections))]
        if node.redis is not None:
            metrics.append(Reading(
                "izh_node_limits_redis_errors_total",
                "Failed Redis calls of the limits shared by the node's workers (then enforced per worker)",
                lambda: float(node.redis_errors())))
        if node.synced is not None:
            synced = node.synced
            metrics.append(Reading(
                "izh_node_limits_syncs_total",
                "Syncs of the per-IP message limit with the node's (or cluster's) other processes",
                lambda: float(synced.syncs)))
        return Extension(
            admission=[Guard(limits, node)],
            middlewares=[upload_limit_middleware(node.uploads)],
            metrics=metrics,
            on_start=[node.start],
            on_stop=[node.close],
            app_state={LIMITS_KEY: limits},
        )
