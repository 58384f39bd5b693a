"""A `websockets` parser lent by the `ParserPool` goes back only at a frame boundary with no
message half-received: a connection that ends while its parser holds part of a message
(here: failed for too many fragments) must not hand that parser to the next connection,
which would then refuse its first whole message as "expected a continuation frame"."""

from __future__ import annotations

from gateway.edge.ws import MAX_FRAGMENTS, ParserPool, WsConnection
from tests.transport.test_hostile_frames import frame


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Owner:
    high_water = 1 << 20

    def __init__(self) -> None:
        self.parsers = ParserPool(1 << 20)
        self.texts: list[str] = []
        self.closed: list[str] = []

    def on_text(self, conn: WsConnection, text: str) -> None:
        self.texts.append(text)

    def on_binary(self, conn: WsConnection, data: bytes) -> None:
        raise AssertionError("no binary expected")

    def on_closed(self, conn: WsConnection, why: str) -> None:
        self.closed.append(why)

    def mark_dirty(self, conn: WsConnection) -> None:
        pass

    def on_overflow(self, conn: WsConnection) -> None:
        pass

    def read_admitted(self) -> bool:
        return True

    def defer_read(self, conn: WsConnection) -> None:
        raise AssertionError("nothing deferred")

    def count_coalesced(self, frames: int) -> None:
        pass


def connect(owner: Owner) -> tuple[WsConnection, Transport]:
    conn = WsConnection(owner, session=None)
    t = Transport()
    conn.connection_made(t)  # type: ignore[arg-type]
    return conn, t


def test_a_parser_mid_message_is_not_lent_again() -> None:
    owner = Owner()
    hostile, ht = connect(owner)
    # the fragment that passes the bound is the last frame of the read
    flood = frame(0x1, b"4", fin=False) + frame(0x0, b"x", fin=False) * MAX_FRAGMENTS
    hostile.data_received(flood)
    assert hostile.closed and ht.closed and owner.closed == ["transport"]
    assert len(owner.parsers) == 0

    honest, t = connect(owner)
    honest.data_received(frame(0x1, b"42[\"hi\"]"))
    assert owner.texts == ['42["hi"]'] and not honest.closed


def test_whole_frames_give_the_parser_back_and_it_parses_the_next_connection() -> None:
    owner = Owner()
    a, _ = connect(owner)
    a.data_received(frame(0x1, b"3") + frame(0x1, b"4x", fin=False))  # a pong, then half a message
    assert len(owner.parsers) == 0  # held: a message is half received
    a.data_received(frame(0x0, b"y"))
    assert owner.texts == ["3", "4xy"]
    assert len(owner.parsers) == 1  # back at a frame boundary
    b, _ = connect(owner)
    b.data_received(frame(0x1, b"3"))
    assert owner.texts == ["3", "4xy", "3"] and not b.closed
