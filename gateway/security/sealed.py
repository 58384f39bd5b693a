"""`SealedColumn`: where a feature keeps values sealed under the master key.

The master-key check (gateway/admin/masterkey.py) opens the first such value of every
declared column before the canary exists, and `master-key rotate` re-seals them all; the
core knows the columns only from these declarations (`Feature.sealed`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """`column` of `table` (rows with `id`, `tenant_id` and `created_at`) holds `SecretBox`
    values sealed with `aad(tenant_id, id)` as associated data, stored as base64 text or hex.
    `name`: the key of its count in the rotation's report; `describe`: a row named in an
    error (`{id}` is the row's id); `only`: an SQL condition on the rows that hold one."""

    name: str
    describe: str
    table: str
    column: str
    aad: Callable[[str, str], bytes]
    encoding: Literal["base64", "hex"] = "base64"
    only: str = ""
