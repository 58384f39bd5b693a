"""Encrypt-while-writing with age (pyrage): plaintext goes in, only ciphertext reaches the store.

`pyrage.encrypt_io(reader, writer, recipients)` runs in one worker thread per stream and
pulls plaintext from an in-memory queue. age seals 64 KiB STREAM chunks
(ChaCha20-Poly1305); pyrage hands each sealed chunk to the writer as soon as it is full,
and the blob writer passes it to the OS (and fsyncs) before returning. So:

- plaintext exists only in process memory (at most one chunk plus the queue);
- a crash (SIGKILL, power loss after fsync) keeps every completed 64 KiB chunk: the file
  decrypts to that prefix (pyrage/age then report "truncated"; `decrypt_prefix` keeps the
  prefix); the last, incomplete chunk (< 64 KiB of plaintext) is lost.

Playback does not use pyrage (it cannot seek): `recording/ageseek.py` decrypts the chunks a
byte range needs; `decrypt_prefix` stays the whole-file reference the tests compare it with.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from typing import BinaryIO

import pyrage
from pyrage import x25519


class _QueueReader(io.RawIOBase):
    def __init__(self, q: queue.SimpleQueue[bytes | None]) -> None:
        self._q = q
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf and not self._eof:
            item = self._q.get()
            if item is None:
                self._eof = True
            else:
                self._buf = item
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        data = bytes(b)
        self._sink.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


class AgeStreamWriter(io.RawIOBase):
    """A writable file object: `write` queues plaintext; a worker thread encrypts it into `sink`."""

    def __init__(self, sink: BinaryIO, recipient: str) -> None:
        self._q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._out = _HashingWriter(sink)
        self._sink = sink
        self._error: BaseException | None = None
        self.plain_bytes = 0
        rcpt = x25519.Recipient.from_str(recipient)
        self._thread = threading.Thread(target=self._run, args=(rcpt,), name="age-encrypt", daemon=True)
        self._thread.start()

    def _run(self, rcpt: x25519.Recipient) -> None:
        try:
            pyrage.encrypt_io(_QueueReader(self._q), self._out, [rcpt])
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a finished recording")
        data = bytes(b)
        if data:
            self._q.put(data)
            self.plain_bytes += len(data)
        return len(data)

    def finish(self) -> tuple[int, str]:
        """Write the final chunk, close the sink; returns (ciphertext size, sha256 hex). Blocks."""
        if not self.closed:
            self._q.put(None)
            self._thread.join()
            self._sink.close()
            super().close()
        if self._error is not None:
            raise self._error
        return self._out.size, self._out.sha256.hexdigest()

    def close(self) -> None:
        # PyAV may close the file object it was given; the real end is finish().
        pass


def decrypt_prefix(ciphertext: bytes, identity: x25519.Identity) -> tuple[bytes, bool]:
    """Decrypt an age file; for a truncated one (crash), return the authenticated prefix.

    Returns (plaintext, complete)."""
    out = io.BytesIO()
    try:
        pyrage.decrypt_io(io.BytesIO(ciphertext), out, [identity])
    except OSError as exc:
        if "truncated" not in str(exc):
            raise
        return out.getvalue(), False
    return out.getvalue(), True
