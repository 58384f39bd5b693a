"""The seekable age reader (recording/ageseek.py) against pyrage and the `age` tool: whole
files, every chunk on its own, files cut by a crash, the final-chunk flag, tampering, a
wrong identity, and a fuzzed header; plus `LocalBlobStore.read_range`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrage import x25519

from recording.ageseek import (
    CHUNK,
    MAX_HEADER,
    NONCE,
    SEALED,
    AgeFormatError,
    AgeReader,
    bech32_decode,
    parse_header,
    x25519_secret,
)
from recording.agestream import decrypt_prefix
from recording.blobs import LocalBlobStore

AGE = shutil.which("age") or "/usr/bin/age"
IDENT = x25519.Identity.generate()
SIZES = (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7)


def plaintext(n: int) -> bytes:
    return os.urandom(n)


def encrypt(plain: bytes) -> bytes:
    return bytes(pyrage.encrypt(plain, [IDENT.to_public()]))


def reader(data: bytes, log: list[tuple[int, int]] | None = None) -> AgeReader:
    def fetch(off: int, n: int) -> bytes:
        if log is not None:
            log.append((off, n))
        return data[off:off + n]
    return AgeReader.open(fetch, len(data), str(IDENT))


def read_all(r: AgeReader) -> bytes:
    return b"".join(r.chunk(i) for i in range(r.chunks))


def header_len(data: bytes) -> int:
    h = parse_header(data)
    assert h is not None
    return h.length


def age_tool(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    assert Path(AGE).exists(), "the `age` tool is required (apt-get install age)"
    key, f = tmp_path / "key.txt", tmp_path / "f.age"
    key.write_text(str(IDENT) + "\n")
    f.write_bytes(data)
    return subprocess.run([AGE, "-d", "-i", str(key), str(f)], capture_output=True, timeout=30)


def test_identity_scalar_matches_pyrage_recipient():
    secret = x25519_secret(str(IDENT))
    pub = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    assert bech32_decode(str(IDENT.to_public()), "age") == pub
    with pytest.raises(ValueError):
        x25519_secret(str(IDENT)[:-1] + ("Q" if str(IDENT)[-1] != "Q" else "P"))  # checksum
    with pytest.raises(ValueError):
        x25519_secret(str(IDENT.to_public()))  # a recipient is not an identity


@pytest.mark.parametrize("n", SIZES)
def test_whole_file_matches_pyrage_and_age_tool(n, tmp_path):
    plain = plaintext(n)
    data = encrypt(plain)
    r = reader(data)
    assert r.complete and r.size == n
    assert r.chunks == max(1, -(-n // CHUNK))  # an empty file still has one (empty, final) chunk
    assert read_all(r) == plain == decrypt_prefix(data, IDENT)[0]
    res = age_tool(tmp_path, data)
    assert res.returncode == 0 and res.stdout == plain


def test_each_chunk_alone_reads_only_that_chunk():
    plain = plaintext(5 * CHUNK + 100)
    data = encrypt(plain)
    log: list[tuple[int, int]] = []
    r = reader(data, log)
    start = header_len(data) + NONCE
    assert log[-1] == (start + 5 * SEALED, 116)  # open: header, then the final chunk only
    for i in (3, 0, 4, 1):
        log.clear()
        assert r.chunk(i) == plain[i * CHUNK:(i + 1) * CHUNK]
        assert log == [(start + i * SEALED, SEALED)]
    log.clear()
    assert r.chunk(5) == plain[5 * CHUNK:] and log == []  # the final chunk was kept from open
    with pytest.raises(IndexError):
        r.chunk(6)


@pytest.mark.parametrize("n", (3 * CHUNK, 3 * CHUNK + 7))
def test_cut_files_match_pyrage_and_age_tool(n, tmp_path):
    plain = plaintext(n)
    data = encrypt(plain)
    p0 = header_len(data) + NONCE
    cuts = {header_len(data) - 1, header_len(data), p0 - 1, p0, p0 + 10, p0 + SEALED - 1, p0 + SEALED,
            p0 + SEALED + 1, p0 + SEALED + TAG_ONLY, p0 + 2 * SEALED, p0 + 3 * SEALED, len(data) - 1}
    for cut in sorted(c for c in cuts if 0 < c < len(data)):
        part = data[:cut]
        try:
            ref: tuple[bytes, bool] | None = decrypt_prefix(part, IDENT)
        except Exception:
            ref = None
        res = age_tool(tmp_path, part)
        if ref is None:
            with pytest.raises(AgeFormatError):
                read_all(reader(part))
            assert res.returncode != 0
            continue
        r = reader(part)
        got = read_all(r)
        assert (got, r.complete) == ref, cut
        assert not r.complete and len(got) % CHUNK == 0 and got == plain[:len(got)]
        # age reports the cut ("truncated", or "unexpected EOF" before any chunk) after the prefix
        assert res.returncode != 0 and res.stdout == got, (cut, res.stderr)
        assert b"truncated" in res.stderr or b"unexpected EOF" in res.stderr, res.stderr


TAG_ONLY = 16


def test_final_flag_is_checked():
    """Two whole chunks where the second is not final: truncated, not complete; data after the
    final chunk is refused."""
    a, b = encrypt(plaintext(2 * CHUNK)), encrypt(plaintext(3 * CHUNK))
    cut = b[:header_len(b) + NONCE + 2 * SEALED]  # chunk 1 is not final
    r = reader(cut)
    assert not r.complete and r.size == 2 * CHUNK
    extended = a + os.urandom(SEALED)  # chunk 1 of `a` is final, then more
    with pytest.raises(AgeFormatError):
        read_all(reader(extended))
    with pytest.raises(Exception):  # noqa: B017 - pyrage refuses it too
        decrypt_prefix(extended, IDENT)


@pytest.mark.parametrize("where", ("header", "mac", "nonce", "first", "middle", "last"))
def test_flipped_byte_is_refused(where, tmp_path):
    plain = plaintext(3 * CHUNK + 5)
    data = bytearray(encrypt(plain))
    hl = header_len(bytes(data))
    p0 = hl + NONCE
    at = {"header": 30, "mac": hl - 5, "nonce": hl + 3, "first": p0 + 100, "middle": p0 + SEALED + 7,
          "last": len(data) - 1}[where]
    data[at] ^= 0x01
    with pytest.raises(AgeFormatError):
        read_all(reader(bytes(data)))
    assert age_tool(tmp_path, bytes(data)).returncode != 0


def test_wrong_identity_is_refused():
    data = pyrage.encrypt(b"x" * 10, [x25519.Identity.generate().to_public()])
    with pytest.raises(AgeFormatError):
        reader(data)


def test_header_bounds():
    data = encrypt(b"hello")
    hl = header_len(data)
    assert parse_header(data[:hl - 1]) is None  # needs more
    for bad in (b"age-encryption.org/v2\n", b"not age\n", b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n",
                b"age-encryption.org/v1\n-> X25519  a\nAAAA\n", b"age-encryption.org/v1\n-> X\n" + b"A" * 65 + b"\n",
                b"age-encryption.org/v1\n-> X\nAA==\n", b"age-encryption.org/v1\n-> X\n\n--- short\n",
                b"age-encryption.org/v1\n" + b"-> X\n\n" * 17):
        with pytest.raises(AgeFormatError):
            parse_header(bad)
    with pytest.raises(AgeFormatError):  # no end within MAX_HEADER
        parse_header(b"age-encryption.org/v1\n" + (b"-> X\n" + (b"A" * 64 + b"\n") * 300))
    long_body = b"age-encryption.org/v1\n-> X\n" + (b"A" * 64 + b"\n") * (MAX_HEADER // 65)
    with pytest.raises(AgeFormatError):
        parse_header(long_body)


FUZZ_BASE = pyrage.encrypt(b"payload", [IDENT.to_public()])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzzed_header_only_raises_age_format_error(data):
    base, hl = FUZZ_BASE, header_len(FUZZ_BASE)
    kind = data.draw(st.sampled_from(["mutate", "random", "splice"]))
    if kind == "mutate":
        buf = bytearray(base)
        for _ in range(data.draw(st.integers(1, 4))):
            buf[data.draw(st.integers(0, hl - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(buf)
    elif kind == "random":
        blob = b"age-encryption.org/v1\n" + data.draw(st.binary(max_size=600))
    else:
        cut = data.draw(st.integers(0, hl))
        blob = base[:cut] + data.draw(st.binary(max_size=200)) + base[cut:]
    try:
        r = reader(blob)
        read_all(r)
    except AgeFormatError:
        pass


def test_local_blob_store_read_range(tmp_path):
    store = LocalBlobStore(tmp_path)
    f = store.create("t/x.age")
    f.write(bytes(range(256)) * 4)
    f.close()
    assert store.read_range("t/x.age", 0, 10) == bytes(range(10))
    assert store.read_range("t/x.age", 1020, 10) == bytes(range(252, 256))
    assert store.read_range("t/x.age", 1024, 10) == b"" == store.read_range("t/x.age", 5000, 1)
    assert store.read_range("t/x.age", 5, 0) == b""
    with pytest.raises(ValueError):
        store.read_range("t/x.age", -1, 4)
    with pytest.raises(FileNotFoundError):
        store.read_range("t/none.age", 0, 4)
