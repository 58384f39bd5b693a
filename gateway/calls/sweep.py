"""What a dead node leaves behind: its unfinished calls.

A call lives in the process that terminated its caller's leg (`calls.node_id`). When that
process dies its browsers see the connection drop, but its row would stay `ringing` or
`answered` for ever (no other node may touch a live call). So every node writes a
heartbeat (`node_heartbeats`) every `CALL_NODE_HEARTBEAT` seconds and, on the same
tick, ends the unfinished calls of nodes silent for four heartbeats as `node_lost`
(their recordings, cut off mid-write, become `truncated`), telling the conversation's
watchers and the tenant's agents with `call:updated`. At start-up a node ends what a
previous process under its own id left unfinished (a restarted worker keeps its id) as
`gateway_restart`; a clean shutdown deletes its heartbeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.aio.periodic import Periodic
from gateway.calls.store import CallRepository, CallRow
from gateway.calls.timeline import record_call
from gateway.chat.service import ChatService
from gateway.store import NotFound

log = logging.getLogger(__name__)


class NodeSweeper:
    def __init__(self, store: CallRepository, chat: ChatService, node_id: str, clock: Callable[[], float], *,
                 heartbeat: float, stale_after: float) -> None:
        self.store = store
        self.chat = chat
        self.node_id = node_id
        self.clock = clock
        self.stale_after = stale_after
        self.ended = 0  # calls of dead nodes ended here
        self._periodic = Periodic("calls-node-sweep", self.tick, heartbeat)

    async def start(self) -> None:
        """Heartbeat now, end what a previous process under this id left, then tick."""
        await self.store.heartbeat(self.node_id, self.clock())
        left = await self.store.end_unfinished_of(self.node_id, self.clock())
        if left:
            log.warning("%d call(s) left unfinished by this node's previous process ended as gateway_restart",
                        len(left))
            await self._announce(left)
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        await self.store.forget_node(self.node_id)

    async def tick(self) -> None:
        now = self.clock()
        await self.store.heartbeat(self.node_id, now)
        gone = await self.store.end_orphaned(self.node_id, now, now - self.stale_after)
        if gone:
            self.ended += len(gone)
            log.warning("ended %d call(s) of node(s) silent for %.0f s: %s", len(gone), self.stale_after,
                        ", ".join(sorted({c.node_id for c in gone})))
            await self._announce(gone)

    async def _announce(self, calls: list[CallRow]) -> None:
        for call in calls:
            try:
                conv = await self.chat.store.get_conversation(call.tenant_id, call.conversation_id)
                await self.chat.publish_event(conv, "call:updated", {"call": call.to_dict()}, to_tenant=True)
                await record_call(self.chat, call)
            except NotFound:
                pass
            except Exception:
                log.exception("announcing the end of call %s failed", call.id)
