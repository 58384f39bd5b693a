"""SecretBox sealing and master key loading."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from gateway.security.crypto import MasterKeyError, SecretBox, load_master_key, parse_key


def test_seal_open_and_associated_data() -> None:
    box = SecretBox(b"\x01" * 32)
    blob = box.seal(b"secret", b"channel:t1:c1")
    assert b"secret" not in blob
    assert box.open(blob, b"channel:t1:c1") == b"secret"
    assert box.seal(b"secret", b"a") != box.seal(b"secret", b"a")  # fresh nonce
    with pytest.raises(MasterKeyError):
        box.open(blob, b"channel:t2:c1")  # moved to another row
    with pytest.raises(MasterKeyError):
        SecretBox(b"\x02" * 32).open(blob, b"channel:t1:c1")
    with pytest.raises(MasterKeyError):
        box.open(b"short")
    assert box.derive("a") != box.derive("b") and len(box.derive("a")) == 32


def test_key_file_is_created_once_with_0600(tmp_path: Path) -> None:
    k1 = load_master_key(None, data_dir=str(tmp_path), embedded=True)
    k2 = load_master_key(None, data_dir=str(tmp_path), embedded=True)
    assert k1 == k2 and len(k1) == 32
    assert stat.S_IMODE(os.stat(tmp_path / "master.key").st_mode) == 0o600


def test_env_key_wins_and_shared_database_requires_it(tmp_path: Path) -> None:
    key = base64.b64encode(b"\x07" * 32).decode()
    assert load_master_key(key, data_dir=str(tmp_path), embedded=False) == b"\x07" * 32
    with pytest.raises(MasterKeyError, match="MASTER_KEY is not set"):
        load_master_key(None, data_dir=str(tmp_path), embedded=False)
    assert not (tmp_path / "master.key").exists()
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(MasterKeyError):
            parse_key(bad)
