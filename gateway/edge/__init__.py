"""The public edge: Engine.IO v4 and Socket.IO v5 over aiohttp, websocket frames parsed by
the `websockets` Sans-I/O layer. Nothing here knows about chat; `gateway.realtime` sits on top."""

from gateway.edge.engine import Admission, EngineServer, EngineSettings, Refusal, Session
from gateway.edge.sockets import BatchHandler, ConnectRefused, NamespaceHandler, QueuedEvent, Reply, SocketServer

__all__ = ["Admission", "BatchHandler", "ConnectRefused", "EngineServer", "EngineSettings", "NamespaceHandler",
           "QueuedEvent", "Refusal", "Reply", "Session", "SocketServer"]
