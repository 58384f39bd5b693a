"""HTTPS/WSS served by the gateway process itself (TLS_CERT/TLS_KEY), with a CA made here."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.procs import ROOT, free_port

pytestmark = pytest.mark.slow


def make_ca_and_server_cert(tmp: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "IZIHelp test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def _serve(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def test_https_and_wss_with_self_signed_ca(tmp_path) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "PORT": str(port), "TLS_CERT": str(cert),
           "TLS_KEY": str(key), "PYTHONUNBUFFERED": "1"}
    for k in ("DATABASE_URL", "REDIS_URL"):
        env.pop(k, None)
    created = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway", "tenant", "create",
                                                       "--name", "TLS"], env=env, cwd=ROOT, capture_output=True,
                                      timeout=60)
    assert created.returncode == 0, created.stderr.decode()
    t = json.loads(created.stdout)
    proc = _serve(env)
    ctx = ssl.create_default_context(cafile=str(ca))
    url = f"https://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None
                try:
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "TLS gateway not ready"
                await asyncio.sleep(0.2)
            # without the CA the certificate is refused
            async with aiohttp.ClientSession() as plain:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await plain.get(url + "/healthz")

            sio = socketio.AsyncClient(reconnection=False, http_session=http)
            got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            sio.on("session", got.put_nowait, namespace="/visitor")
            await sio.connect(url, namespaces=["/visitor"], auth={"widget_key": t["widget_key"]},
                              transports=["websocket"], wait_timeout=10)
            try:
                assert sio.transport() == "websocket"
                session = await asyncio.wait_for(got.get(), 10)
                assert session["visitor_token"]
                res = await sio.call("conversation:start", namespace="/visitor", timeout=10)
                assert res["ok"], res
            finally:
                await sio.disconnect()
    finally:
        proc.terminate()
        rc = await asyncio.to_thread(proc.wait, 20)
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert "listening on https://" in out
    assert "uvloop event loop" in out  # the default EVENT_LOOP
    assert rc == 0, out[-2000:]
