"""Socket.IO namespaces /visitor and /agent on the edge's Socket.IO server (`gateway.edge`).

The handshake turns the `auth` object into a typed `Conn`; every event then goes
through one dispatcher that validates, calls the handler and shapes the ack.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

from gateway.aio.tasks import TaskSet
from gateway.chat.service import ChatService, PostResult, contact_channel
from gateway.chat.wire import visitor_conversation_dict
from gateway.config import Config
from gateway.core.domain import AgentStatus
from gateway.core.errors import Code, GatewayError
from gateway.edge import ConnectRefused, QueuedEvent, Reply, Session, SocketServer
from gateway.ops.metrics import Metrics
from gateway.realtime.context import Conn
from gateway.realtime.fanout import Fanout
from gateway.realtime.handlers import Handler, Handlers, SendRequest, send_ack
from gateway.realtime.handshake import Handshake
from gateway.realtime.presence import PresenceTracker
from gateway.store import AppendRequest, NotFound

log = logging.getLogger(__name__)

VISITOR_NS = "/visitor"
AGENT_NS = "/agent"
SEND = "message:send"


class Gate(Protocol):
    """An admission check of Socket.IO requests, declared by a feature (rate limits)."""

    def check(self, namespace: str, event: str, sid: str, remote: str) -> Awaitable[None] | None:
        """Before a request's handler: raise to refuse it (e.g. `rate_limited`), or return an
        awaitable that may still raise; None when there is nothing to wait for."""

    def forget(self, sid: str) -> None:
        """Socket.IO connection `sid` has ended."""


class DrainState:
    """Whether this node drains (gateway/realtime/drain.py): namespace handshakes are refused."""

    def __init__(self) -> None:
        self.draining = False


class RealtimeServer:
    def __init__(
        self,
        config: Config,
        chat: ChatService,
        handshake: Handshake,
        presence: PresenceTracker,
        sockets: SocketServer,
        metrics: Metrics,
        fanout: Fanout,
        handlers: Handlers,
        *,
        gates: Sequence[Gate] = (),
        drain: DrainState | None = None,
    ) -> None:
        """Serves the namespaces on `sockets` (registering them there); `gates`: the
        features' admission checks, run in order before every request's handler."""
        self.config = config
        self.chat = chat
        self.handshake = handshake
        self.presence = presence
        self.sockets = sockets
        self.metrics = metrics
        self.conns: dict[tuple[str, str], Conn] = {}
        self._tasks = TaskSet()
        self.fanout = fanout
        self.handlers = handlers
        self.gates = tuple(gates)
        self.drain = drain or DrainState()
        self.inflight = 0  # requests being handled (drain waits for 0)
        self._tables: dict[str, Mapping[str, Handler]] = {VISITOR_NS: handlers.visitor, AGENT_NS: handlers.agent}
        for namespace, table in self._tables.items():
            self.sockets.namespaces[namespace] = _Namespace(namespace, self, table)
            self.sockets.batch_handlers[(namespace, SEND)] = self.send_batch

    def attach(self, app: web.Application, path: str) -> None:
        self.sockets.engine.add_routes(app, path)

    async def broadcast(self, event: str, data: dict[str, Any]) -> None:
        """`event` to every connection of this node."""
        for conn in list(self.conns.values()):
            self.sockets.emit(conn.eio_sid, conn.namespace, event, data)

    @property
    def connection_count(self) -> int:
        return len(self.conns)

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    # --- lifecycle of a connection --------------------------------------
    async def connect(self, namespace: str, sid: str, session: Session, auth: Any) -> Callable[[], None] | None:
        """Admit the connection (or raise `GatewayError`); returns what sends its `session`
        event, which the edge calls right after the CONNECT packet (None when the session
        could not be read: the connection stays, as a client without it reconnects anyway)."""
        remote = session.remote
        if self.drain.draining:
            raise GatewayError(Code.UNAVAILABLE, "this node is draining; reconnect", retry_after=1.0)
        if namespace == AGENT_NS:
            principal = await self.handshake.agent(auth)
            conn = Conn(sid, session.sid, namespace, principal.tenant_id, principal, remote,
                        user_agent=session.user_agent, origin=session.origin)
            conn.groups = (sys.intern(f"tenant:{principal.tenant_id}"),)  # session: from the principal
        else:
            vs = await self.handshake.visitor(auth)
            p = vs.principal
            conn = Conn(sid, session.sid, namespace, p.tenant_id, p, remote,
                        user_agent=session.user_agent, origin=session.origin)
            conn.groups = (contact_channel(p.tenant_id, p.contact_id),)
            conn.session = {"visitor_token": vs.token, "visitor_id": p.visitor_id,
                            "contact_id": p.contact_id, "identified": vs.identified}
        self.conns[(namespace, sid)] = conn
        try:
            for ch in conn.groups:
                await self.fanout.join_group(conn, ch)
            if conn.is_agent:
                await self._agent_connected(conn)
        except BaseException:
            await self.disconnect(namespace, sid)
            raise
        self.metrics.connects.labels(namespace).inc()
        return await self._session_sender(conn)

    async def _agent_connected(self, conn: Conn) -> None:
        first = await self.presence.add(conn.agent.agent_id) == 1
        if first:
            agent = await self.chat.store.get_agent(conn.tenant_id, conn.agent.agent_id)
            if agent.status == AgentStatus.OFFLINE:
                await self.chat.set_presence(conn.agent, AgentStatus.ONLINE)
            else:
                await self.chat.assign_queued(conn.tenant_id)

    async def _session_sender(self, conn: Conn) -> Callable[[], None] | None:
        try:
            session = dict(conn.session)
            if not conn.is_agent:
                convs = await self.chat.list_visitor_conversations(conn.visitor)
                session["conversations"] = [visitor_conversation_dict(c) for c in convs]
        except GatewayError as exc:  # e.g. the store unavailable: logged once per outage by the store
            log.debug("the session for %s was not sent: %s", conn.sid, exc)
            return None
        except Exception:
            log.exception("reading the session of %s failed", conn.sid)
            return None
        sockets = self.sockets

        def send() -> None:
            sockets.emit(conn.eio_sid, conn.namespace, "session", session)

        return send

    async def disconnect(self, namespace: str, sid: str) -> None:
        conn = self.conns.pop((namespace, sid), None)
        if conn is None:
            return
        for gate in self.gates:
            gate.forget(sid)
        try:
            await self.fanout.drop(conn, conn.groups)
            if conn.is_agent:
                await self.presence.remove(conn.agent.agent_id)
        except Exception:
            log.exception("cleanup of %s failed", sid)

    async def dispatch(self, namespace: str, table: Mapping[str, Handler], event: str, sid: str,
                       args: tuple[Any, ...]) -> dict[str, Any]:
        req = self._request(namespace, table, event, sid, args)
        if isinstance(req, dict):
            return req
        conn, handler, payload = req
        started = self._begin()
        try:
            pending = self._check(namespace, event, conn)
        except Exception as exc:
            return self._fail(namespace, event, exc, started)
        return await self._handle(namespace, event, conn, handler, payload, pending, started)

    def _request(self, namespace: str, table: Mapping[str, Handler], event: str, sid: str,
                 args: Sequence[Any]) -> tuple[Conn, Handler, Any] | dict[str, Any]:
        """(connection, handler, payload) of a request, or the answer to one that goes no
        further (not connected, unknown event, more than one argument, `session:get`)."""
        conn = self.conns.get((namespace, sid))
        if conn is None:
            return GatewayError(Code.UNAUTHORIZED, "not connected").to_dict()
        if event == "session:get":
            return {"ok": True, **conn.session}
        handler = table.get(event)
        if handler is None:
            return GatewayError(Code.UNKNOWN_EVENT, f"unknown event {event[:64]!r}").to_dict()
        if len(args) > 1:
            return GatewayError(Code.BAD_REQUEST, "an event takes one payload object").to_dict()
        return conn, handler, args[0] if args else None

    def _begin(self) -> float:
        self.inflight += 1
        return time.perf_counter()

    def _check(self, namespace: str, event: str, conn: Conn) -> Awaitable[None] | None:
        """The admission checks (raise e.g. rate_limited), or what to wait for before handling."""
        pending: Awaitable[None] | None = None
        for gate in self.gates:
            more = gate.check(namespace, event, conn.sid, conn.remote)
            if more is not None:
                pending = more if pending is None else _in_turn(pending, more)
        return pending

    async def _handle(self, namespace: str, event: str, conn: Conn, handler: Handler, payload: Any,
                      pending: Awaitable[None] | None, started: float) -> dict[str, Any]:
        outcome = "ok"
        try:
            if pending is not None:
                await pending
            return await handler(conn, _payload(payload))
        except Exception as exc:
            outcome, ack = self._failure(event, exc)
            return ack
        finally:
            self._done(namespace, event, outcome, started)

    def _fail(self, namespace: str, event: str, exc: Exception, started: float) -> dict[str, Any]:
        outcome, ack = self._failure(event, exc)
        self._done(namespace, event, outcome, started)
        return ack

    @staticmethod
    def _failure(event: str, exc: Exception) -> tuple[str, dict[str, Any]]:
        """(metrics outcome, the error ack) of a handler's exception."""
        if isinstance(exc, GatewayError):
            return exc.code.value, exc.to_dict()
        if isinstance(exc, NotFound):
            return Code.NOT_FOUND.value, GatewayError(Code.NOT_FOUND, "not found").to_dict()
        log.error("handler %s failed", event, exc_info=exc)
        return Code.INTERNAL.value, GatewayError(Code.INTERNAL, "internal error").to_dict()

    def _done(self, namespace: str, event: str, outcome: str, started: float) -> None:
        self.inflight -= 1
        m = self.metrics
        m.child(m.events, namespace, event, outcome).inc()
        m.child(m.event_latency, namespace, event).observe(time.perf_counter() - started)

    async def send_batch(self, namespace: str, events: list[QueuedEvent], reply: Reply) -> None:
        """The `message:send`s that arrived in one turn of the loop, in one task: each is
        checked and validated as `dispatch` does, the text messages to conversations whose
        owner is known go to the store and the broker together (`ChatService.post_messages`),
        the others (attachments, a conversation not yet seen) each run `dispatch`'s way in a
        task of their own. Each is answered, and counted, as `dispatch` would."""
        table = self._tables[namespace]
        send = self.handlers.send
        posts: list[tuple[QueuedEvent, Conn, AppendRequest, float]] = []
        for ev in events:
            req = self._request(namespace, table, SEND, ev.sid, ev.args)
            if isinstance(req, dict):
                reply(ev, req)
                continue
            conn, handler, payload = req
            started = self._begin()
            rq: AppendRequest | None = None
            parsed: SendRequest | None = None
            try:
                pending = self._check(namespace, SEND, conn)
                if pending is None and handler == send:
                    parsed = self.handlers.parse_send(_payload(payload))
                    conv_id, client_id, text, ids = parsed
                    if not ids:
                        rq = self.chat.quick_post(conn.principal, conv_id, client_id, text)
            except Exception as exc:
                reply(ev, self._fail(namespace, SEND, exc, started))
                continue
            if rq is None:
                if parsed is not None:  # validated already: straight to the post
                    handler = self._post_parsed(parsed)
                self._spawn(self._handle_and_reply(ev, conn, handler, payload, pending, started, reply))
            else:
                posts.append((ev, conn, rq, started))
        if not posts:
            return
        results: list[PostResult | Exception]
        try:
            results = await self.chat.post_messages([(conn.principal, rq) for _, conn, rq, _ in posts])
        except Exception as exc:  # a bug: each is answered `internal`
            results = [exc] * len(posts)
        except BaseException:
            for _, _, _, started in posts:
                self._done(namespace, SEND, "ok", started)  # as dispatch counts a cancelled request
            raise
        for (ev, _, _, started), res in zip(posts, results, strict=True):
            if isinstance(res, Exception):
                reply(ev, self._fail(namespace, SEND, res, started))
            else:
                self._done(namespace, SEND, "ok", started)
                reply(ev, send_ack(res))

    def _post_parsed(self, req: SendRequest) -> Handler:
        """The `message:send` handler of a payload `parse_send` has validated."""
        post = self.handlers.post

        async def handler(conn: Conn, _p: Mapping[str, Any]) -> dict[str, Any]:
            return await post(conn, req)

        return handler

    async def _handle_and_reply(self, ev: QueuedEvent, conn: Conn, handler: Handler, payload: Any,
                                pending: Awaitable[None] | None, started: float, reply: Reply) -> None:
        reply(ev, await self._handle(ev.namespace, SEND, conn, handler, payload, pending, started))


def _payload(payload: Any) -> Mapping[str, Any]:
    if payload is not None and not isinstance(payload, dict):
        raise GatewayError(Code.BAD_REQUEST, "payload must be an object")
    return payload or {}


async def _in_turn(first: Awaitable[None], then: Awaitable[None]) -> None:
    await first
    await then


class _Namespace:
    """A namespace's handlers as the edge's `NamespaceHandler`; a refused handshake's
    CONNECT_ERROR carries `{"code", "details"}` in its `data`."""

    def __init__(self, namespace: str, server: RealtimeServer, table: Mapping[str, Handler]) -> None:
        self.namespace = namespace
        self._server = server
        self._table = table

    async def connect(self, sid: str, session: Session, auth: Any) -> Callable[[], None] | None:
        try:
            return await self._server.connect(self.namespace, sid, session, auth)
        except GatewayError as exc:
            self._server.metrics.refusals.labels(self.namespace, exc.code.value).inc()
            data: dict[str, Any] = {"code": exc.code.value}
            if exc.details:
                data["details"] = exc.details
            raise ConnectRefused(exc.message, data) from None
        except Exception:
            log.exception("connect failed")
            raise ConnectRefused("internal error", {"code": Code.INTERNAL.value}) from None

    async def disconnect(self, sid: str) -> None:
        await self._server.disconnect(self.namespace, sid)

    async def event(self, sid: str, event: str, args: list[Any]) -> Any:
        return await self._server.dispatch(self.namespace, self._table, event, sid, tuple(args))
