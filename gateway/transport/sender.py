"""Socket writes on a thread of their own (`_sender.c`), with per-connection order kept.

A websocket write costs ~20 µs in the kernel (on loopback the receiver's TCP input runs in
the sender's call too); py-spy put `LeanSocket._write` at 15-18 % of the event loop's time
at 3,000 msg/s. `SendThread` hands the bytes to a C thread that never takes the GIL, so
that work runs beside the loop instead of on it.

How a connection's bytes stay in order and never reach another connection:

- A connection with nothing in flight here and an empty transport buffer starts a *run*:
  its socket is `dup()`ed (the loop may close its own descriptor at any time, and a new
  connection may then get its number; the thread only ever writes to the dup) and its
  writes go to the thread, in submission order, until the thread has reported all of them
  back (`_on_done`); then the dup is closed and the run ends.
- A connection whose transport holds unwritten bytes (uvloop buffers what the socket
  would not take) and has nothing in flight writes through the transport, behind them.
- A write the socket would not take whole ("would block": the client reads slowly) is
  diverted: the thread stops writing that connection and hands this write's unwritten
  tail, and every later write of the run, back in order; `_on_done` gives them to the
  transport. When the run ends, `unstall` clears the thread's mark.
- Backpressure is the transport's, as before: a slow client's writes are diverted to the
  transport's buffer, and above the high-water mark the connection is dropped. What is in
  flight here is at most what the loop queued since the thread's last report (a healthy
  client's burst — a resume of many messages — is not a slow client).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.transport.socket import LeanSocket


def sender_available() -> bool:
    """Whether the C extension is built (`pip install` compiles it; a tree without it runs
    every write on the loop, as `SEND_THREAD=off` does)."""
    try:
        from gateway.transport import _sender  # noqa: F401
    except ImportError:
        return False
    return True


def plain_tcp_transports() -> frozenset[type]:
    """The transport classes whose `write` puts its bytes on the socket unchanged."""
    import asyncio.selector_events

    kinds: set[type] = {asyncio.selector_events._SelectorSocketTransport}  # type: ignore[attr-defined]
    with contextlib.suppress(ImportError, AttributeError):
        import uvloop.loop

        kinds.add(uvloop.loop.TCPTransport)  # type: ignore[attr-defined]
    return frozenset(kinds)


class _Run:
    """One connection's writes in flight on the thread."""

    __slots__ = ("diverted", "fd", "jobs", "sock")

    def __init__(self, sock: LeanSocket, fd: int) -> None:
        self.sock = sock
        self.fd = fd  # our dup of the connection's socket
        self.jobs = 0
        self.diverted = False


class SendThread:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from gateway.transport._sender import Sender

        self._loop = loop
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._sender = Sender(self._efd)
        self._runs: dict[int, _Run] = {}
        self._closed = False
        # Only plain TCP transports write what they are given to their socket as it is; a
        # TLS transport's socket carries records (its `socket` extra is the TCP socket
        # under the TLS layer), so its writes stay on the transport.
        self._plain = plain_tcp_transports()
        self.jobs = 0  # writes handed to the thread
        self.diverted = 0  # writes (or their tails) handed back to the transport
        self.failed = 0  # writes the socket refused (the connection was gone)
        loop.add_reader(self._efd, self._on_done)

    def write(self, sock: LeanSocket, t: Any, data: bytes) -> bool:
        """Queue `data` for `sock` (transport `t`) on the thread; False when the caller must
        write it to the transport (its buffer holds bytes to go first, or no dup is possible)."""
        key = id(sock)  # `_runs` keeps `sock` alive while the key is in use
        run = self._runs.get(key)
        if run is None:
            if type(t) not in self._plain or t.get_write_buffer_size() or t.is_closing():
                return False
            try:
                fd = os.dup(t.get_extra_info("socket").fileno())
            except (OSError, AttributeError):  # out of descriptors: the loop writes it
                return False
            run = self._runs[key] = _Run(sock, fd)
        run.jobs += 1
        self.jobs += 1
        self._sender.submit(run.fd, data, key)
        return True

    def _on_done(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)
        runs = self._runs
        for key, _nbytes, rest, err in self._sender.drain():
            run = runs[key]
            run.jobs -= 1
            sock = run.sock
            if rest is not None:
                self.diverted += 1
                run.diverted = True
                sock.write_diverted(rest)
            elif err:
                self.failed += 1
                sock.write_failed(err)
            if run.jobs == 0:
                del runs[key]
                os.close(run.fd)
                if run.diverted and not self._closed:
                    self._sender.unstall(key)

    def stats(self) -> dict[str, int]:
        return {"send_jobs": self.jobs, "send_diverted": self.diverted, "send_failed": self.failed,
                "send_runs": len(self._runs)}

    def close(self) -> None:
        """Write what is queued, stop the thread, release every dup."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._efd)
        self._sender.close()
        self._on_done()
        for run in self._runs.values():  # only if a drain failed: never leak descriptors
            with contextlib.suppress(OSError):
                os.close(run.fd)
        self._runs.clear()
        os.close(self._efd)
