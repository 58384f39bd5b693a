"""A lean websocket transport under python-socketio's AsyncServer.

After aiohttp has parsed the upgrade request on the shared port, the raw transport is taken
over by a small `asyncio.Protocol` per connection (no task or queue per connection); pings
come from one shared timer, and fan-out writes pre-built frames coalesced per connection.
HTTP long-polling (and polling→websocket upgrades) stay on engineio's stock path.
"""

from gateway.transport.emitter import LeanEmitter
from gateway.transport.hub import LeanTransport
from gateway.transport.socket import LeanSocket

__all__ = ["LeanEmitter", "LeanSocket", "LeanTransport"]
