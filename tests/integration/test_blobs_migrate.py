"""`python -m gateway blobs migrate` (issue 30) against SeaweedFS's S3: copies DATA_DIR's
files into the bucket verified by checksum, prints counts, skips what is already there
(idempotent, so an interrupted run resumes), repairs a differing copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.blobs.s3 import S3Blobs
from tests.support.procs import ROOT
from tests.support.seaweed import S3Server

pytestmark = [pytest.mark.s3]


def run_cli(env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    out = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, cwd=ROOT, capture_output=True,
                         timeout=120)
    text = out.stdout.decode()
    return out.returncode, json.loads(text) if out.returncode in (0, 1) and text else None, out.stderr.decode()


async def test_migrate_copies_verifies_and_resumes(tmp_path: Path, seaweed: S3Server) -> None:
    files = {
        "uploads/t1/" + "a" * 32: b"upload bytes",
        "attachments/t1/ab/" + "c" * 32 + "-hoa_don.pdf": b"%PDF attachment",
        "recordings/t1/" + "d" * 32 + ".age": os.urandom(3 * 1024 * 1024 + 5),
    }
    for key, data in files.items():
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(data)
    (tmp_path / "gateway.sqlite3").write_bytes(b"not a blob")
    prefix = f"migrate-{os.urandom(4).hex()}"
    env = {**os.environ, "DATA_DIR": str(tmp_path), **seaweed.env(prefix)}
    for k in ("DATABASE_URL", "REDIS_URL"):
        env.pop(k, None)

    code, report, err = run_cli(env, "blobs", "migrate")
    assert code == 0, err
    assert report == {"files": 3, "copied": 3, "skipped": 0, "failed": 0,
                      "bytes_copied": sum(len(d) for d in files.values())}
    bucket = S3Blobs(seaweed.settings(prefix + "/"))
    try:
        for key, data in files.items():
            assert await bucket.get(key) == data
        code, report, _ = run_cli(env, "blobs", "migrate")  # again: nothing to copy
        assert code == 0 and report == {"files": 3, "copied": 0, "skipped": 3, "failed": 0, "bytes_copied": 0}
        damaged = "uploads/t1/" + "a" * 32
        await bucket.put(damaged, b"upload byteX")  # same size, other bytes: copied again
        code, report, _ = run_cli(env, "blobs", "migrate")
        assert code == 0 and report["copied"] == 1 and report["skipped"] == 2
        assert await bucket.get(damaged) == files[damaged]
    finally:
        await bucket.close()
    assert (tmp_path / damaged).exists()  # the local files stay


def test_migrate_needs_a_bucket(tmp_path: Path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    env.pop("BLOB_URL", None)
    code, _, err = run_cli(env, "blobs", "migrate")
    assert code == 2 and "BLOB_URL" in err
