"""python-socketio's client manager without a stored room per sid.

The stock manager puts every sid in a room named after itself: one `bidict` (two dicts)
per connection, ~420 bytes, and `basic_disconnect` scans every room of the namespace, so
each disconnect costs O(connections). Here a sid's own room is implied by the namespace's
`None` room (which maps every connected sid to its engine.io sid): it is never stored, and
emitting to it, `rooms()` and leaving it behave as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import socketio


class LeanManager(socketio.AsyncManager):  # type: ignore[misc]
    def _sid_room(self, ns: dict[Any, Any], room: Any) -> dict[str, str]:
        """The members of `room` when it is a sid's own (implied) room, else {}."""
        if room is None or not isinstance(room, str):
            return {}
        everyone = ns.get(None)
        if everyone is None:
            return {}
        eio_sid = everyone.get(room)
        return {} if eio_sid is None else {room: eio_sid}

    def _members(self, ns: dict[Any, Any], room: Any) -> dict[str, str]:
        stored = ns.get(room)
        if stored is not None:
            return dict(stored)
        return self._sid_room(ns, room)

    def get_participants(self, namespace: str, room: Any) -> Iterator[tuple[str, str]]:
        ns = self.rooms.get(namespace, {})
        if hasattr(room, "__len__") and not isinstance(room, str):
            participants: dict[str, str] = {}
            for r in room:
                participants.update(self._members(ns, r))
        else:
            participants = self._members(ns, room)
        yield from participants.items()

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        if room is not None and room == sid:
            # a sid's own room: implied by the `None` room, which pre_connect fills first
            everyone = self.rooms.get(namespace, {}).get(None)
            if everyone is not None and sid in everyone:
                return
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        rooms: list[Any] = super().get_rooms(sid, namespace)
        if sid not in rooms and self._sid_room(self.rooms.get(namespace, {}), sid):
            rooms.insert(0, sid)
        return rooms
