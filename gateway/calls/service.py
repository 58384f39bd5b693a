"""Call use cases: start (ring), accept, decline, hang up, ring timeout; state in `calls`.

A call lives on the node that terminated the caller's leg (its media is in this process).
Every state change is stored first, then published to the conversation (and to every
agent of the tenant, so ringing UIs stop) as `call:updated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiortc import RTCConfiguration

from gateway.aio.tasks import TaskSet
from gateway.calls.media import AGENT, VISITOR, CallMedia, SdpError, check_offer
from gateway.calls.settings import CallSettings
from gateway.calls.store import CallRepository, CallRow
from gateway.calls.timeline import record_call
from gateway.chat.principals import AgentPrincipal, VisitorPrincipal
from gateway.chat.service import ChatService
from gateway.core.domain import Conversation
from gateway.core.errors import Code, GatewayError, bad_request, not_found
from gateway.store.rows import new_id
from recording.service import Recordings

log = logging.getLogger(__name__)

# end reasons
MISSED, CANCELLED, DECLINED = "missed", "cancelled", "declined"
CALLER_HANGUP, AGENT_HANGUP = "caller_hangup", "agent_hangup"
CONNECTION_LOST, MAX_DURATION, SHUTDOWN = "connection_lost", "max_duration", "shutdown"
DECLINE_RECHECK = 1.0  # s between checks of a ringing call that some agent declined


@dataclass
class ActiveCall:
    row: CallRow
    conv: Conversation
    media: CallMedia
    declined: set[str] = field(default_factory=set)
    timer: asyncio.Task[None] | None = None
    ending: bool = False


class CallService:
    def __init__(self, *, store: CallRepository, chat: ChatService, recordings: Recordings, settings: CallSettings,
                 rtc_config: RTCConfiguration, node_id: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.chat = chat
        self.recordings = recordings
        self.settings = settings
        self.rtc_config = rtc_config
        self.node_id = node_id
        self.clock = clock
        self.active: dict[str, ActiveCall] = {}
        self._tasks = TaskSet()

    def ice_servers(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.settings.ice_servers]

    # --- helpers ---------------------------------------------------------
    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        return self._tasks.spawn(coro, name)

    async def _publish(self, call: ActiveCall) -> None:
        await self.chat.publish_event(call.conv, "call:updated", {"call": call.row.to_dict()}, to_tenant=True)

    def _get_active(self, tenant_id: str, call_id: str) -> ActiveCall:
        call = self.active.get(call_id)
        if call is None or call.row.tenant_id != tenant_id:
            raise not_found("call")
        return call

    async def owner_elsewhere(self, tenant_id: str, call_id: str) -> str | None:
        """The node (or worker) holding a live call that is not in this process, if any."""
        if call_id in self.active:
            return None
        row = await self.store.get(tenant_id, call_id)
        if row is None or row.state == "ended" or row.node_id == self.node_id:
            return None
        return row.node_id

    async def _online_agents(self, tenant_id: str) -> set[str]:
        """Agents who chose `online` and are connected to some node now (a closed console
        does not count: issue 31)."""
        return await self.chat.available_agents(tenant_id)

    # --- visitor ---------------------------------------------------------
    async def start(self, p: VisitorPrincipal, conversation_id: str, sdp: str) -> tuple[CallRow, str, bool]:
        conv = await self.chat.conversation_for(p, conversation_id)
        if any(c.row.conversation_id == conv.id for c in self.active.values()):
            raise GatewayError(Code.LIMIT_REACHED, "a call is already in progress in this conversation")
        now = self.clock()
        row = CallRow(new_id(), p.tenant_id, conv.id, conv.contact_id, None, self.node_id, "ringing", now,
                      None, None, None, None, None)
        call = ActiveCall(row, conv, CallMedia(self.rtc_config, lambda leg: self._leg_down(row.id, leg),
                                                  direct=self.settings.direct_rtp))
        try:
            answer = await call.media.answer(VISITOR, sdp)
        except SdpError as exc:
            await call.media.close()
            raise bad_request(str(exc), field="sdp") from None
        try:
            await self.store.create(row)
        except BaseException:
            await call.media.close()
            raise
        self.active[row.id] = call
        if await self.store.recording_enabled(p.tenant_id, self.settings.recording_default):
            try:
                call.media.recorder = await self.recordings.start(p.tenant_id, row.id, ("caller", "agent"))
                await self.store.set_recording(p.tenant_id, row.id, call.media.recorder.id)
                call.row = replace(call.row, recording_id=call.media.recorder.id)
            except Exception:
                log.exception("call %s: recording could not start; the call goes on unrecorded", row.id)
        call.timer = self._spawn(self._ring_timeout(row.id), f"call-ring-{row.id}")
        online = await self._online_agents(p.tenant_id)
        await self.chat.publish_event(conv, "call:ringing", {
            "call": call.row.to_dict(), "contact_id": conv.contact_id, "ice_servers": self.ice_servers()},
            to_tenant=True)
        await self._publish(call)
        return call.row, answer, bool(online)

    async def _ring_timeout(self, call_id: str) -> None:
        """Ends the call `missed` after the ring timeout. Once an agent has declined, it checks
        every `DECLINE_RECHECK` s whether every agent still online and connected has declined
        (the others closed their consoles meanwhile): then it ends `declined`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ring_timeout
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, DECLINE_RECHECK))
            call = self.active.get(call_id)
            if call is None or call.row.state != "ringing" or call.ending:
                return
            if call.declined and await self._online_agents(call.row.tenant_id) <= call.declined:
                await self.end(call, DECLINED)
                return
        call = self.active.get(call_id)
        if call is not None and call.row.state == "ringing":
            await self.end(call, MISSED)

    # --- agent -----------------------------------------------------------
    async def accept(self, p: AgentPrincipal, call_id: str, sdp: str) -> tuple[CallRow, str]:
        call = self._get_active(p.tenant_id, call_id)
        if call.row.state != "ringing" or call.ending:
            raise GatewayError(Code.CONVERSATION_CLOSED, "the call is no longer ringing", state=call.row.state)
        try:
            check_offer(sdp)  # an unusable offer leaves the call ringing for the other agents
        except SdpError as exc:
            raise bad_request(str(exc), field="sdp") from None
        now = self.clock()
        if not await self.store.answer(p.tenant_id, call_id, p.agent_id, now):
            raise GatewayError(Code.CONVERSATION_CLOSED, "the call is no longer ringing")
        call.row = replace(call.row, state="answered", agent_id=p.agent_id, answered_at=now)
        if call.timer is not None:
            call.timer.cancel()
        try:
            answer = await call.media.answer(AGENT, sdp)
        except SdpError as exc:
            await self.end(call, CONNECTION_LOST)
            raise bad_request(str(exc), field="sdp") from None
        call.timer = self._spawn(self._max_duration(call_id), f"call-max-{call_id}")
        await self._publish(call)
        await self._take_conversation(p, call)
        return call.row, answer

    async def _take_conversation(self, p: AgentPrincipal, call: ActiveCall) -> None:
        """The agent who answers a call gets its conversation when it has no agent yet."""
        try:
            conv = await self.chat.store.get_conversation(p.tenant_id, call.row.conversation_id)
            if conv.assignee_id is None:
                call.conv = await self.chat.update_conversation(p, conv.id, status=None, assignee_id=p.agent_id,
                                                                unassign=False)
        except Exception:
            log.exception("call %s: assigning its conversation to the agent who answered failed", call.row.id)

    async def _max_duration(self, call_id: str) -> None:
        await asyncio.sleep(self.settings.max_duration)
        call = self.active.get(call_id)
        if call is not None:
            await self.end(call, MAX_DURATION)

    async def decline(self, p: AgentPrincipal, call_id: str) -> CallRow:
        call = self._get_active(p.tenant_id, call_id)
        if call.row.state != "ringing":
            raise GatewayError(Code.CONVERSATION_CLOSED, "the call is no longer ringing", state=call.row.state)
        call.declined.add(p.agent_id)
        if await self._online_agents(p.tenant_id) <= call.declined:  # every connected online agent declined
            await self.end(call, DECLINED)
        return call.row

    # --- either side -----------------------------------------------------
    async def hangup(self, p: VisitorPrincipal | AgentPrincipal, call_id: str) -> CallRow:
        call = self._get_active(p.tenant_id, call_id)
        if isinstance(p, VisitorPrincipal):
            if call.row.contact_id != p.contact_id:
                raise not_found("call")
            reason = CANCELLED if call.row.state == "ringing" else CALLER_HANGUP
        else:
            if call.row.state == "ringing":
                return await self.decline(p, call_id)
            if call.row.agent_id != p.agent_id:
                raise GatewayError(Code.FORBIDDEN, "only the agent on the call can hang up")
            reason = AGENT_HANGUP
        return await self.end(call, reason)

    def _leg_down(self, call_id: str, leg: int) -> None:
        call = self.active.get(call_id)
        if call is not None and not call.ending:
            self._spawn(self.end(call, CONNECTION_LOST), f"call-lost-{call_id}")

    async def end(self, call: ActiveCall, reason: str) -> CallRow:
        if call.ending:
            return call.row
        call.ending = True
        now = self.clock()
        duration = round(now - call.row.answered_at, 3) if call.row.answered_at is not None else 0.0
        if call.timer is not None and call.timer is not asyncio.current_task():
            call.timer.cancel()
        try:
            await call.media.close()
            if call.media.recorder is not None:
                await call.media.recorder.finish()
        finally:
            self.active.pop(call.row.id, None)
            first = await self.store.end(call.row.tenant_id, call.row.id, reason=reason, now=now,
                                         duration=duration)
            call.row = replace(call.row, state="ended", ended_at=now, end_reason=reason, duration=duration)
            await self._publish(call)
            if first:  # the first end writes the call's entry in the conversation
                await record_call(self.chat, call.row)
        return call.row

    async def history(self, p: VisitorPrincipal | AgentPrincipal, conversation_id: str) -> list[CallRow]:
        conv = await self.chat.conversation_for(p, conversation_id)
        return await self.store.list_for_conversation(p.tenant_id, conv.id)

    async def close(self) -> None:
        for call in list(self.active.values()):
            with contextlib.suppress(Exception):
                await self.end(call, SHUTDOWN)
        await self._tasks.close()
