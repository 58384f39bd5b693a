"""The `Broker` protocol: best-effort pub/sub of msgpack envelopes between nodes.

The broker carries, the store decides: a lost or reordered envelope is repaired by
the receiver (gap detection by `seq`, then a fetch from the store). A node subscribes
only to channels it has local listeners for: `conv:<tenant>:<conversation>` and
`tenant:<tenant>`.

Publishing never waits for the bus: what a node publishes reaches its own subscribers
at once (also while the bus is unreachable) and the other nodes when the bus takes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import field
from typing import Any, Protocol

import msgpack

from gateway.core.records import record


def conv_channel(tenant_id: str, conversation_id: str) -> str:
    return f"conv:{tenant_id}:{conversation_id}"


def tenant_channel(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


@record
class Envelope:
    """One event on a channel.

    kind: "message" (carries seq/epoch), "typing", "read", "conversation", "call", …
    data: the event payload exactly as clients receive it (msgpack-able).
    origin: node id of the publisher; sid: publishing socket (to skip echoes), if any.
    """

    kind: str
    tenant_id: str
    data: dict[str, Any]
    conversation_id: str | None = None
    seq: int | None = None
    epoch: str | None = None
    origin: str = ""
    sid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def pack(self) -> bytes:
        return msgpack.packb(
            {
                "k": self.kind,
                "t": self.tenant_id,
                "d": self.data,
                "c": self.conversation_id,
                "s": self.seq,
                "e": self.epoch,
                "o": self.origin,
                "i": self.sid,
                "x": self.extra,
            },
            use_bin_type=True,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Envelope:
        """Raise ValueError on anything that is not a well-formed envelope."""
        try:
            obj = msgpack.unpackb(raw, raw=False)
        except Exception as exc:  # msgpack raises several unrelated types
            raise ValueError(f"bad envelope: {exc}") from exc
        if not isinstance(obj, dict):
            raise ValueError("bad envelope: not a map")
        kind, tenant, data = obj.get("k"), obj.get("t"), obj.get("d")
        if not isinstance(kind, str) or not isinstance(tenant, str) or not isinstance(data, dict):
            raise ValueError("bad envelope: missing kind/tenant/data")
        seq = obj.get("s")
        if seq is not None and not isinstance(seq, int):
            raise ValueError("bad envelope: seq")
        extra = obj.get("x") or {}
        if not isinstance(extra, dict):
            raise ValueError("bad envelope: extra")
        return cls(
            kind=kind,
            tenant_id=tenant,
            data=data,
            conversation_id=_opt_str(obj.get("c")),
            seq=seq,
            epoch=_opt_str(obj.get("e")),
            origin=_opt_str(obj.get("o")) or "",
            sid=_opt_str(obj.get("i")),
            extra=extra,
        )


def _opt_str(v: object) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError("bad envelope: expected a string")
    return v


EnvelopeHandler = Callable[[str, Envelope], Awaitable[None]]
"""Called with (channel, envelope) for every envelope on a subscribed channel,
in publish order per channel per publisher. A handler must not change `envelope.data`:
the in-process broker hands the publisher's own envelope to every subscriber."""


class Broker(Protocol):
    async def start(self, handler: EnvelopeHandler) -> None:
        """Connect and start delivering envelopes of subscribed channels to `handler`."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the broker is unreachable."""

    async def publish(self, channel: str, envelope: Envelope) -> None:
        """Hand `envelope` over without waiting for the bus (best effort): when its `origin`
        is this broker's node id it reaches this node's handler (if subscribed to `channel`)
        without a round trip through the bus, and exactly once; the other subscribers get
        it when the bus takes it. Envelopes of one publisher reach a subscriber in publish
        order, possibly twice after a failure on the bus, or not at all (repaired from the
        store). Raises only when the broker is closed or the envelope does not pack."""

    async def publish_many(self, items: Sequence[tuple[str, Envelope]]) -> None:
        """`publish` of each (channel, envelope), in order (one round trip where the broker
        has them)."""

    async def subscribe(self, channel: str) -> None:
        """Idempotent. When it returns, envelopes published afterwards are delivered."""

    async def unsubscribe(self, channel: str) -> None:
        """Idempotent."""

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established (a consumer should treat
        each as a possible gap on every channel)."""

    async def reconnected(self, seen: int) -> int:
        """Wait until `reconnects` is no longer `seen`, and return it (at once when it is
        not already). A broker that never reconnects waits until cancelled. Nothing polls:
        an idle node is not woken by the wait."""

    @property
    def publish_failures(self) -> int:
        """Envelopes whose sending to the bus failed (each attempt counts; they are sent
        again until the bus takes them)."""

    @property
    def publish_dropped(self) -> int:
        """Envelopes never sent to the bus (the backlog was full): the other nodes repair
        them from the store."""

    @property
    def publish_backlog(self) -> int:
        """Envelopes waiting for the bus."""
