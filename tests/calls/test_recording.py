"""Recording storage: crash keeps a decryptable prefix, export + identity work with the age
tool, crypto-shredding makes recordings unrecoverable, keys are sealed under the master key."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import av
import pytest
from pyrage import x25519

from recording.agestream import decrypt_prefix
from recording.masterkey import MasterKeyError, Sealer, load_master_key
from tests.calls.crash_writer import opus_packets
from tests.calls.support import calls_of

ROOT = Path(__file__).resolve().parents[2]
AGE = shutil.which("age") or "/usr/bin/age"


def test_kill_mid_recording_keeps_decryptable_prefix(tmp_path):
    ident = x25519.Identity.generate()
    proc = subprocess.Popen([sys.executable, "-m", "tests.calls.crash_writer", str(tmp_path), str(ident.to_public())],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    blob = (tmp_path / "t" / "rec.age").read_bytes()
    assert b"OggS" not in blob
    plain, complete = decrypt_prefix(blob, ident)
    assert not complete and len(plain) >= 3 * 65536 and len(plain) % 65536 == 0
    c = av.open(io.BytesIO(plain), mode="r", format="ogg")
    assert [s.metadata.get("title") for s in c.streams.audio] == ["caller", "agent"]
    frames = 0
    for packet in c.demux():
        if packet.size:
            frames += len(packet.decode())
    assert frames > 500  # > 5 s per stream survived the kill


def test_master_key_file_and_sealer(tmp_path):
    k = load_master_key(None, str(tmp_path), embedded=True)
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    assert load_master_key(None, str(tmp_path), embedded=True) == k
    with pytest.raises(MasterKeyError):
        load_master_key(None, str(tmp_path), embedded=False)
    with pytest.raises(MasterKeyError):
        load_master_key("c2hvcnQ=", str(tmp_path), embedded=True)
    s = Sealer(k)
    sealed = s.seal(b"secret", b"aad")
    assert s.open(sealed, b"aad") == b"secret"
    with pytest.raises(MasterKeyError):
        s.open(sealed, b"other")


def _cli(tmp_path, *args):
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    env.pop("MASTER_KEY", None)
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "gateway", "recording", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_export_identity_age_tool_and_shred(call_gateway, tmp_path):
    rg = call_gateway
    nt = await rg.tenant()
    _, token = await rg.agent_token(nt.tenant.id)
    service = calls_of(rg)
    rec = await service.recordings.start(nt.tenant.id, "c" * 32, ("caller", "agent"))
    pkts = opus_packets(150)
    for i, p in enumerate(pkts):
        rec.add(0, p, i * 960)
        rec.add(1, p, i * 960)
    row = await rec.finish()
    assert row.state == "complete"

    out = tmp_path / "export.age"
    r = _cli(tmp_path, "export", "--id", row.id, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"age-encryption.org/v1")
    r = _cli(tmp_path, "identity", "--tenant", nt.tenant.id)
    assert r.returncode == 0, r.stderr
    assert "AGE-SECRET-KEY-" in r.stdout
    key = tmp_path / "key.txt"
    key.write_text(r.stdout)
    pb = await service.recordings.open(await service.recordings.row(nt.tenant.id, row.id))
    played = b"".join([bytes(piece) async for piece in pb.stream(0, pb.size)])
    assert pb.complete and played.startswith(b"OggS")
    # the Debian age tool (CI installs it; fail, do not skip, when it is missing)
    assert Path(AGE).exists(), "the `age` tool is required (apt-get install age)"  # noqa: ASYNC240
    res = await asyncio.to_thread(subprocess.run, [AGE, "-d", "-i", str(key), str(out)], capture_output=True,
                                  timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == played

    r = _cli(tmp_path, "shred", "--tenant", nt.tenant.id)
    assert r.returncode == 2  # needs --yes
    r = _cli(tmp_path, "shred", "--tenant", nt.tenant.id, "--yes")
    assert r.returncode == 0 and '"keys_shredded": 1' in r.stdout, r
    r = _cli(tmp_path, "identity", "--tenant", nt.tenant.id)
    assert r.returncode == 2
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{rg.url}/api/v1/recordings/{row.id}", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 404
    # the ciphertext is still there but nothing left can open it
    assert out.read_bytes() == (tmp_path / "recordings" / row.blob_key).read_bytes()
    async with rg.gw.db.reader() as c:
        k = await c.fetchrow("SELECT identity_sealed, shredded_at FROM recording_keys WHERE id = $1", row.key_id)
    assert k["identity_sealed"] is None and k["shredded_at"] is not None
    # a new recording gets a new key
    new_key = await service.recordings.keys.current(nt.tenant.id)
    assert new_key.key_id != row.key_id
    # issue 30: --delete-files removes the ciphertext too
    r = _cli(tmp_path, "shred", "--tenant", nt.tenant.id, "--yes", "--delete-files")
    assert r.returncode == 0 and '"files_deleted": 1' in r.stdout, r
    assert not (tmp_path / "recordings" / row.blob_key).exists()


async def test_recording_switch_off(call_gateway, tmp_path):
    rg = call_gateway
    nt = await rg.tenant()
    r = _cli(tmp_path, "switch", "--tenant", nt.tenant.id, "off")
    assert r.returncode == 0, r.stderr
    assert not await calls_of(rg).store.recording_enabled(nt.tenant.id, True)
