"""The master key checked at start against a sealed canary in the database.

The first start with a key seals a known text under it (`settings.master_key_check`); every
later start (every node, every worker, every admin command that loads the key) opens it
first. A malformed `MASTER_KEY` (or `DATA_DIR/master.key`) and a valid key that is not the
one the data was sealed with both raise `ConfigError` (the process exits 2, naming the
variable) instead of starting with recordings that do not open and replies that cannot be
sent. Before the canary exists (a database from before this check), the key must open the
sealed data already there (the features' declared `SealedColumn`s: channel credentials,
recording identities), or it is refused too.
Without any key (PostgreSQL and no `MASTER_KEY`) there is nothing to check: the gateway runs
without connectors and recording, as documented.

`rotate_master_key` re-seals everything sealed under the key (channel credentials, recording
identities, the canary) under a new one, in one transaction (`python -m gateway master-key
rotate`, nodes stopped).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.config import ConfigError, read_env_file
from gateway.security.crypto import KEY_FILE, MasterKeyError, SecretBox, load_master_key, parse_key
from gateway.security.sealed import SealedColumn
from gateway.store.db import Database
from gateway.store.sql import Conn

CANARY_SETTING = "master_key_check"
CANARY_TEXT = b"izihelp master key check v1"
CANARY_AAD = b"izihelp-master-key-check"
WRONG_KEY = ("MASTER_KEY is not the key this database's data was sealed with ({what} does not open under it): "
             "start with the key the data was sealed with, or re-seal everything under a new key with "
             "`python -m gateway master-key rotate` (docs/operations.md, Privacy)")


def master_key_setting(env: Mapping[str, str]) -> str | None:
    """`MASTER_KEY` from `env` or its GATEWAY_CONFIG file (as the features read it)."""
    merged: dict[str, str] = {}
    if env.get("GATEWAY_CONFIG"):
        merged.update(read_env_file(env["GATEWAY_CONFIG"]))
    merged.update(env)
    return merged.get("MASTER_KEY") or None


def master_box(value: str | None, data_dir: str, *, embedded: bool) -> SecretBox | None:
    """The key's `SecretBox`; None when no key is available (shared database, unset);
    `ConfigError` when the key (variable or DATA_DIR/master.key) is malformed."""
    if not value and not embedded:
        return None
    try:
        return SecretBox(load_master_key(value, data_dir=data_dir, embedded=embedded))
    except MasterKeyError as exc:
        where = "MASTER_KEY" if value else f"{os.path.join(data_dir, 'master.key')} (used as MASTER_KEY is unset)"
        raise ConfigError(f"{where}: {exc}") from None


def _opens(box: SecretBox, sealed: bytes, aad: bytes) -> bool:
    try:
        box.open(sealed, aad)
    except MasterKeyError:
        return False
    return True


def _decode(column: SealedColumn, stored: object) -> bytes:
    try:
        if column.encoding == "hex":
            return bytes.fromhex(str(stored))
        return base64.b64decode(str(stored))
    except (binascii.Error, ValueError):
        return b""


def _encode(column: SealedColumn, sealed: bytes) -> str:
    return sealed.hex() if column.encoding == "hex" else base64.b64encode(sealed).decode()


def _rows(column: SealedColumn, order: str) -> str:
    where = f" WHERE {column.only}" if column.only else ""
    return f"SELECT id, tenant_id, {column.column} AS sealed FROM {column.table}{where} ORDER BY {order}"


async def _sealed_data_opens(conn: Conn, box: SecretBox, sealed: Sequence[SealedColumn]) -> str | None:
    """What of the data sealed before the canary existed does not open (None: all tried open)."""
    for column in sealed:
        row = await conn.fetchrow(_rows(column, "created_at, id") + " LIMIT 1")
        if row is not None and not _opens(box, _decode(column, row["sealed"]),
                                          column.aad(str(row["tenant_id"]), str(row["id"]))):
            return column.describe.format(id=row["id"])
    return None


async def check_master_key(db: Database, box: SecretBox, sealed: Sequence[SealedColumn] = ()) -> bool:
    """Raise `ConfigError` unless `box` opens the canary (sealing it first when there is
    none yet, after checking the data sealed before in the `sealed` columns). True when
    this call sealed it."""
    created = False
    async with db.reader() as conn:
        row = await conn.fetchrow("SELECT value FROM settings WHERE key = $1", CANARY_SETTING)
        if row is None:
            failed = await _sealed_data_opens(conn, box, sealed)
            if failed is not None:
                raise ConfigError(WRONG_KEY.format(what=failed))
    if row is None:
        value = base64.b64encode(box.seal(CANARY_TEXT, CANARY_AAD)).decode()
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                               CANARY_SETTING, value)
            row = await conn.fetchrow("SELECT value FROM settings WHERE key = $1", CANARY_SETTING)
        created = row is not None and str(row["value"]) == value
    assert row is not None
    try:
        canary = base64.b64decode(str(row["value"]))
    except (binascii.Error, ValueError):
        canary = b""
    if not _opens(box, canary, CANARY_AAD):
        raise ConfigError(WRONG_KEY.format(what=f"the canary settings.{CANARY_SETTING}"))
    return created


async def verify_master_key(db: Database, env: Mapping[str, str], data_dir: str, *, embedded: bool,
                            sealed: Sequence[SealedColumn] = ()) -> None:
    """The start check: `ConfigError` for a malformed or wrong key; nothing without a key.
    `sealed`: the features' sealed columns."""
    box = master_box(master_key_setting(env), data_dir, embedded=embedded)
    if box is not None:
        await check_master_key(db, box, sealed)


async def rotate_master_key(db: Database, old: SecretBox, new: SecretBox,
                            sealed: Sequence[SealedColumn] = ()) -> dict[str, int]:
    """Re-seal under `new` everything sealed under `old`, in one transaction: every value of
    the `sealed` columns (channel credentials, recording identities not shredded), the
    canary. `ConfigError` (nothing changed) when `old` is not the data's key or a sealed
    value does not open under it. Counts of what was re-sealed, per column."""
    await check_master_key(db, old, sealed)
    counts = {column.name: 0 for column in sealed}
    async with db.transaction() as conn:
        for column in sealed:
            for r in await conn.fetch(_rows(column, "id")):
                aad = column.aad(str(r["tenant_id"]), str(r["id"]))
                try:
                    plain = old.open(_decode(column, r["sealed"]), aad)
                except MasterKeyError:
                    raise ConfigError(WRONG_KEY.format(what=column.describe.format(id=r["id"]))) from None
                await conn.execute(f"UPDATE {column.table} SET {column.column} = $2 WHERE id = $1", r["id"],
                                   _encode(column, new.seal(plain, aad)))
                counts[column.name] += 1
        await conn.execute("UPDATE settings SET value = $2 WHERE key = $1", CANARY_SETTING,
                           base64.b64encode(new.seal(CANARY_TEXT, CANARY_AAD)).decode())
    return counts


def new_master_key(text: str | None) -> SecretBox:
    """The key to rotate to (`NEW_MASTER_KEY`); `ConfigError` when missing or malformed."""
    if not text:
        raise ConfigError("NEW_MASTER_KEY is not set: the key to re-seal under (base64 of 32 bytes, e.g. "
                          "`openssl rand -base64 32`)")
    try:
        return SecretBox(parse_key(text))
    except MasterKeyError as exc:
        raise ConfigError(f"NEW_{exc}") from None


def write_key_file(data_dir: str, key: bytes) -> None:
    """Replace DATA_DIR/master.key (mode 0600) with `key`, atomically."""
    path = Path(data_dir) / KEY_FILE
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".master.key.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.b64encode(key).decode() + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def rotate_command(db: Database, env: Mapping[str, str], data_dir: str, *, embedded: bool,
                         sealed: Sequence[SealedColumn] = ()) -> dict[str, object]:
    """`python -m gateway master-key rotate`: from MASTER_KEY (or DATA_DIR/master.key) to
    NEW_MASTER_KEY; in embedded mode without MASTER_KEY the key file is replaced too."""
    current = master_key_setting(env)
    old = master_box(current, data_dir, embedded=embedded)
    if old is None:
        raise ConfigError("MASTER_KEY is not set: the key the data is sealed with is needed to re-seal it")
    new_text = env.get("NEW_MASTER_KEY")
    new = new_master_key(new_text)
    counts = await rotate_master_key(db, old, new, sealed)
    key_file = None
    if not current:
        assert new_text is not None
        write_key_file(data_dir, parse_key(new_text))
        key_file = str(Path(data_dir) / KEY_FILE)
    return {"rotated": True, **counts, "key_file": key_file,
            "next": "start every node with the new key" + ("" if key_file else " as MASTER_KEY")}
