"""Engine.IO session ids that name the worker process holding the session."""

from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits
MAX_WORKERS = 32


class WorkerSids:
    """`generate` makes ids whose first character is this worker's; `owner` reads it back
    (None for an id no worker of this node made, e.g. an id from before a restart with
    fewer workers, which then fails as an unknown session where it lands)."""

    def __init__(self, index: int, count: int) -> None:
        if not 1 <= count <= MAX_WORKERS or not 0 <= index < count:
            raise ValueError(f"worker {index} of {count}: need 0 <= index < count <= {MAX_WORKERS}")
        self.index = index
        self.count = count
        self._mark = ALPHABET[index]

    def generate(self) -> str:
        return self._mark + secrets.token_urlsafe(15)  # 1 + 20 characters, 120 random bits

    def owner(self, sid: str) -> int | None:
        if not sid:
            return None
        i = ALPHABET.find(sid[0])
        return i if 0 <= i < self.count else None
