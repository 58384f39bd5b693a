"""Random access to an age v1 file encrypted to an X25519 identity: any 64 KiB chunk is
decrypted on its own, so a byte range costs only the chunks it touches.

pyrage decrypts a stream from the start; this module follows the age v1 specification
(c2sp.org/age) with the primitives of the `cryptography` package:

- the text header (`age-encryption.org/v1`, recipient stanzas, `---` MAC) is parsed with
  fixed bounds (`MAX_HEADER` bytes, `MAX_STANZAS` stanzas, `MAX_ARGS` arguments each,
  canonical unpadded base64 only) and anything else is refused (`AgeFormatError`);
- the file key is unwrapped from the first `X25519` stanza that opens under the identity
  (HKDF-SHA-256 + ChaCha20-Poly1305), then the header MAC is checked;
- chunk i of the payload (after the 16-byte nonce) is ChaCha20-Poly1305 under the payload key
  with nonce = 11-byte big-endian i || 0x01 for the final chunk, 0x00 otherwise.

`AgeReader.open` authenticates the last chunk (the spec requires it before seeking from the
end) and so learns the plaintext size and whether the file is complete. A file cut after a
whole chunk (a crash while recording) is `complete = False` and yields the whole chunks
before the cut, as `pyrage`/`age` do before reporting "truncated"; a cut inside a chunk, a
missing nonce, an empty final chunk after data, or any chunk that fails authentication
(with the flag its position requires) is refused, as they refuse it.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 64 * 1024  # plaintext bytes per STREAM chunk
TAG = 16
SEALED = CHUNK + TAG  # ciphertext bytes of a whole chunk
NONCE = 16  # payload nonce after the header
MAX_HEADER = 16 * 1024
MAX_STANZAS = 16
MAX_ARGS = 8
_VERSION = b"age-encryption.org/v1"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_B64_RE = re.compile(rb"^[A-Za-z0-9+/]*$")
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

Fetch = Callable[[int, int], bytes]
"""`fetch(offset, length)`: the file's bytes from `offset`, fewer only at its end."""


class AgeFormatError(ValueError):
    """Not an age v1 file this reader accepts, not for this identity, or it failed authentication."""


@dataclass(frozen=True, slots=True)
class Stanza:
    args: tuple[bytes, ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Header:
    stanzas: tuple[Stanza, ...]
    mac_input: bytes  # the header up to and including "---"
    mac: bytes
    length: int  # bytes of the header, final line feed included


def b64decode_canonical(text: bytes) -> bytes:
    """Unpadded standard base64; non-canonical encodings and padding are refused."""
    if not _B64_RE.match(text) or len(text) % 4 == 1:
        raise AgeFormatError("bad base64")
    raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    if base64.b64encode(raw).rstrip(b"=") != text:
        raise AgeFormatError("non-canonical base64")
    return raw


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_decode(text: str, hrp: str) -> bytes:
    """The bytes of a Bech32 string (BIP 173, no length limit) with the given human-readable
    part; ValueError on a wrong part, mixed case, a bad character or checksum."""
    low = text.lower()
    if text not in (low, text.upper()):
        raise ValueError("mixed-case bech32")
    sep = low.rfind("1")
    if sep < 1 or low[:sep] != hrp.lower() or len(low) - sep - 1 < 6:
        raise ValueError("not a bech32 string of the expected kind")
    try:
        data = [_BECH32.index(c) for c in low[sep + 1:]]
    except ValueError:
        raise ValueError("bad bech32 character") from None
    h = low[:sep]
    if _bech32_polymod([ord(c) >> 5 for c in h] + [0] + [ord(c) & 31 for c in h] + data) != 1:
        raise ValueError("bad bech32 checksum")
    acc = bits = 0
    out = bytearray()
    for v in data[:-6]:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("bad bech32 padding")
    return bytes(out)


def x25519_secret(identity_text: str) -> bytes:
    """The 32-byte X25519 scalar of an `AGE-SECRET-KEY-1…` identity."""
    secret = bech32_decode(identity_text, "AGE-SECRET-KEY-")
    if len(secret) != 32:
        raise ValueError("an age X25519 identity is 32 bytes")
    return secret


def parse_header(buf: bytes) -> Header | None:
    """The header at the start of `buf`; None when `buf` (shorter than `MAX_HEADER`) ends
    before the header does. Raises `AgeFormatError` on anything but a v1 header within the
    bounds. The MAC is not checked here (it needs the file key)."""
    lines: list[tuple[int, bytes]] = []  # (offset, line without LF)
    pos = 0
    limit = min(len(buf), MAX_HEADER)

    def line() -> bytes | None:
        nonlocal pos
        end = buf.find(b"\n", pos, limit)
        if end < 0:
            if limit >= MAX_HEADER:
                raise AgeFormatError("age header too long")
            return None
        lines.append((pos, buf[pos:end]))
        pos = end + 1
        return lines[-1][1]

    first = line()
    if first is None:
        return None
    if first != _VERSION:
        raise AgeFormatError("not an age v1 file")
    stanzas: list[Stanza] = []
    while True:
        ln = line()
        if ln is None:
            return None
        if ln.startswith(b"---"):
            if len(ln) != 4 + 43 or ln[3:4] != b" " or not stanzas:
                raise AgeFormatError("bad age header MAC line")
            mac = b64decode_canonical(ln[4:])
            start = lines[-1][0]
            return Header(tuple(stanzas), buf[:start + 3], mac, pos)
        if not ln.startswith(b"-> "):
            raise AgeFormatError("bad age header line")
        if len(stanzas) >= MAX_STANZAS:
            raise AgeFormatError("too many age stanzas")
        args = tuple(ln[3:].split(b" "))
        if len(args) > MAX_ARGS or any(not a or any(c < 0x21 or c > 0x7E for c in a) for a in args):
            raise AgeFormatError("bad age stanza arguments")
        body = bytearray()
        while True:
            b = line()
            if b is None:
                return None
            if len(b) > 64:
                raise AgeFormatError("age stanza body line too long")
            body += b
            if len(b) < 64:
                break
        stanzas.append(Stanza(args, b64decode_canonical(bytes(body))))


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def unwrap_file_key(header: Header, secret: bytes) -> bytes:
    """The file key from the first X25519 stanza that opens under `secret` (32-byte scalar),
    the header MAC verified; `AgeFormatError` otherwise."""
    priv = X25519PrivateKey.from_private_bytes(secret)
    recipient = priv.public_key().public_bytes_raw()
    for st in header.stanzas:
        if st.args[0] != b"X25519":
            continue  # other recipient types and grease are ignored, as the spec says
        if len(st.args) != 2 or len(st.body) != 32:
            raise AgeFormatError("bad X25519 stanza")
        share = b64decode_canonical(st.args[1])
        if len(share) != 32:
            raise AgeFormatError("bad X25519 share")
        try:
            shared = priv.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:  # low-order point: the all-zero shared secret
            raise AgeFormatError("bad X25519 share") from None
        if shared == bytes(32):
            raise AgeFormatError("bad X25519 share")
        wrap = _hkdf(shared, share + recipient, _X25519_INFO)
        try:
            file_key = ChaCha20Poly1305(wrap).decrypt(bytes(12), st.body, None)
        except InvalidTag:
            continue
        if len(file_key) != 16:
            raise AgeFormatError("bad file key")
        mac = hmac.new(_hkdf(file_key, b"", b"header"), header.mac_input, "sha256").digest()
        if not hmac.compare_digest(mac, header.mac):
            raise AgeFormatError("age header MAC mismatch")
        return file_key
    raise AgeFormatError("no stanza of this age file opens under this identity")


def _chunk_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class AgeReader:
    """Random access to the plaintext of one age file. Blocking (every call may `fetch`);
    holds at most the header and one plaintext chunk (the last one) between calls.

    `size`: plaintext bytes readable (the whole chunks before a cut when not `complete`).
    """

    def __init__(self, fetch: Fetch, payload_start: int, aead: ChaCha20Poly1305, chunks: int,
                 last_plain: bytes, complete: bool) -> None:
        self._fetch = fetch
        self._start = payload_start
        self._aead = aead
        self.chunks = chunks  # readable chunks
        self.complete = complete
        self._last = last_plain  # plaintext of chunk `chunks - 1` (b"" when there is none)
        self.size = (chunks - 1) * CHUNK + len(last_plain) if chunks else 0

    @classmethod
    def open(cls, fetch: Fetch, file_size: int, identity_text: str) -> AgeReader:
        """Parse and authenticate the header, the file key unwrapped with the identity
        (`AGE-SECRET-KEY-1…`), and authenticate the last chunk. `AgeFormatError` when any of
        it fails or the file is cut inside the nonce or a chunk."""
        want = min(1024, file_size)
        while True:
            head = fetch(0, want)
            header = parse_header(head)
            if header is not None:
                break
            if len(head) < want or want >= min(MAX_HEADER, file_size):
                raise AgeFormatError("age header incomplete")
            want = min(want * 4, MAX_HEADER, file_size)
        file_key = unwrap_file_key(header, x25519_secret(identity_text))
        if file_size < header.length + NONCE:
            raise AgeFormatError("age file cut inside its nonce")
        nonce = head[header.length:header.length + NONCE]
        if len(nonce) < NONCE:
            nonce = fetch(header.length, NONCE)
            if len(nonce) != NONCE:
                raise AgeFormatError("age file cut inside its nonce")
        aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        start = header.length + NONCE
        payload = file_size - start
        whole, rem = divmod(payload, SEALED)
        if payload == 0:
            return cls(fetch, start, aead, 0, b"", False)  # cut before the first chunk
        if rem:
            if rem < TAG or (rem == TAG and whole):
                raise AgeFormatError("age file cut inside a chunk")
            last = cls._open_sealed(aead, fetch(start + whole * SEALED, rem), whole, True)
            return cls(fetch, start, aead, whole + 1, last, True)
        sealed = fetch(start + (whole - 1) * SEALED, SEALED)
        try:
            last = cls._open_sealed(aead, sealed, whole - 1, True)
            return cls(fetch, start, aead, whole, last, True)
        except AgeFormatError:
            last = cls._open_sealed(aead, sealed, whole - 1, False)  # a cut after a whole chunk
            return cls(fetch, start, aead, whole, last, False)

    @staticmethod
    def _open_sealed(aead: ChaCha20Poly1305, sealed: bytes, index: int, last: bool) -> bytes:
        if len(sealed) < TAG or len(sealed) > SEALED:
            raise AgeFormatError("age file cut inside a chunk")
        try:
            return aead.decrypt(_chunk_nonce(index, last), sealed, None)
        except InvalidTag:
            raise AgeFormatError(f"age chunk {index} failed authentication") from None

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk `index` (0 ≤ index < chunks), authenticated at its place."""
        if not 0 <= index < self.chunks:
            raise IndexError(index)
        if index == self.chunks - 1:
            return self._last
        sealed = self._fetch(self._start + index * SEALED, SEALED)
        if len(sealed) != SEALED:
            raise AgeFormatError(f"age chunk {index} is short")
        return self._open_sealed(self._aead, sealed, index, False)
