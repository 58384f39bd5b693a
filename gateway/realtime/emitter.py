"""The fan-out `Emitter` on the edge's Socket.IO server: each event is encoded once per
namespace (one packet, one websocket frame) and queued to every recipient's session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.edge import SocketServer
from gateway.edge.wire import EVENT, encode_sio, ws_frame
from gateway.realtime.context import Conn


class EdgeEmitter:
    def __init__(self, sockets: SocketServer) -> None:
        self._sockets = sockets
        self._sessions = sockets.engine.sessions

    async def emit(self, conn: Conn, event: str, data: dict[str, Any]) -> None:
        self._sockets.emit(conn.eio_sid, conn.namespace, event, data)

    async def emit_many(self, conns: Sequence[Conn], event: str, data: dict[str, Any]) -> None:
        if not conns:
            return
        sessions = self._sessions
        ns = None
        packet = frame = b""
        for c in conns:
            if c.namespace != ns:
                ns = c.namespace
                packet = encode_sio(EVENT, ns, [event, data])
                frame = ws_frame(packet)
            s = sessions.get(c.eio_sid)
            if s is not None:
                s.send_frame(frame, packet)

    async def disconnect(self, conn: Conn) -> None:
        await self._sockets.disconnect(conn.eio_sid, conn.namespace)
