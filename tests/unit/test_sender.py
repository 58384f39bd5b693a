"""The lean transport's C send thread (`gateway/transport/_sender.c`) over real sockets."""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import time

import pytest

from gateway.transport._sender import Sender
from tests.support.threads import task_ids, wait_for_policy


def _drain_all(sender: Sender, efd: int, n: int, timeout: float = 5.0) -> list[tuple[int, int, bytes | None, int]]:
    out: list[tuple[int, int, bytes | None, int]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(out)} of {n} jobs reported"
        select.select([efd], [], [], left)
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(efd)
        out += sender.drain()
    return out


def _read_available(sock: socket.socket) -> bytes:
    """Everything the socket holds now (it is made non-blocking)."""
    sock.setblocking(False)
    got = bytearray()
    with contextlib.suppress(BlockingIOError):
        while True:
            got.extend(sock.recv(1 << 20))
    return bytes(got)


@pytest.fixture
def efd():
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    yield fd
    os.close(fd)


def test_jobs_are_written_whole_and_in_order(efd: int) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    for s in (a, b):  # room for every byte: nothing would block
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sender = Sender(efd)
    rng = random.Random(7)
    chunks = [bytes([i % 251]) * rng.randint(1, 300) for i in range(2000)]
    fd = os.dup(a.fileno())
    for c in chunks:
        sender.submit(fd, c, 11)
    results = _drain_all(sender, efd, len(chunks))
    assert results == [(11, len(c), None, 0) for c in chunks]
    assert _read_available(b) == b"".join(chunks)
    sender.close()
    os.close(fd)
    a.close()
    b.close()


def test_a_write_that_would_block_diverts_it_and_every_later_write_in_order(efd: int) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender = Sender(efd)
    fd = os.dup(a.fileno())
    chunks = [bytes([65 + i]) * 10_000 for i in range(20)]
    for c in chunks:
        sender.submit(fd, c, 5)
    results = _drain_all(sender, efd, len(chunks))
    assert [r[0] for r in results] == [5] * len(chunks)
    first = next(i for i, r in enumerate(results) if r[2] is not None)
    # before the first diverted job: written whole; from it on: every byte handed back
    assert all(r[2] is None for r in results[:first])
    assert all(r[2] == chunks[i] for i, r in enumerate(results) if i > first)
    written = _read_available(b)
    tail = results[first][2]
    assert tail is not None
    # what reached the socket and what came back are the whole stream, in order
    assert written + tail + b"".join(r[2] for r in results[first + 1:] if r[2] is not None) \
        == b"".join(chunks)

    # still diverted until unstalled (even with room now); other connections are not
    sender.submit(fd, b"x", 5)
    sender.submit(fd, b"y", 6)
    r = _drain_all(sender, efd, 2)
    assert r == [(5, 1, b"x", 0), (6, 1, None, 0)]
    sender.unstall(5)
    sender.submit(fd, b"z", 5)
    assert _drain_all(sender, efd, 1) == [(5, 1, None, 0)]
    assert b.recv(16) == b"yz"
    sender.close()
    os.close(fd)
    a.close()
    b.close()


def test_a_write_to_a_closed_peer_fails_with_its_errno(efd: int) -> None:
    a, b = socket.socketpair()
    b.close()
    sender = Sender(efd)
    fd = os.dup(a.fileno())
    sender.submit(fd, b"hello", 9)
    [(conn, n, rest, err)] = _drain_all(sender, efd, 1)
    assert (conn, n, rest) == (9, 5, None)
    assert err in (32, 104)  # EPIPE, ECONNRESET
    sender.close()
    os.close(fd)
    a.close()


def test_bad_calls_are_refused(efd: int) -> None:
    sender = Sender(efd)
    with pytest.raises(TypeError):
        sender.submit(1, "text", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sender.submit(1, b"x", 0)
    sender.close()
    with pytest.raises(RuntimeError):
        sender.submit(1, b"x", 1)
    with pytest.raises(RuntimeError):
        sender.unstall(1)
    assert sender.stats()["running"] == 0


def test_the_thread_runs_as_sched_batch(efd: int) -> None:
    """A submit's wakeup must not preempt the event loop's thread, which holds the GIL, on
    its core (docs/performance.md, ninth session)."""
    before = task_ids()
    sender = Sender(efd)
    try:
        (tid,) = task_ids() - before
        wait_for_policy(tid, os.SCHED_BATCH)
    finally:
        sender.close()
