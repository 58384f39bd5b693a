"""Retention (tenant deletion, message expiry) and data-subject requests (export, erase)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.blobs.local import LocalBlobs
from gateway.privacy.retention import YEAR, Retention
from gateway.privacy.store import Policy, PrivacyStore, privacy_store
from gateway.store.rows import new_id
from tests.support.procs import PG_DSN, ROOT, drop_schema
from tests.support.server import RunningGateway, make_config, new_client_id, run_gateway, visitor

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def rg(request, tmp_path, monkeypatch) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv("MASTER_KEY", MASTER_KEY)
    cfg = make_config(tmp_path)
    schema = None
    if request.param == "postgres":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        cfg = replace(cfg, storage=replace(cfg.storage, database_url=PG_DSN, database_schema=schema))
    try:
        async with run_gateway(cfg) as running:
            yield running
    finally:
        if schema:
            await drop_schema(schema)


def _exists(path: str) -> bool:
    return Path(path).exists()


async def _populate(rg: RunningGateway, name: str, n: int = 3) -> dict[str, str]:
    """A tenant with a visitor conversation of `n` visitor messages + an upload file in it."""
    t = await rg.tenant(name)
    v = await visitor(rg.url, t.tenant.widget_key, name="Nguyễn Văn A", email="a@example.vn")
    try:
        conv = (await v.call("conversation:start"))["conversation"]["id"]
        for i in range(n):
            assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                  "text": f"xin chào {i}"}))["ok"]
        contact = v.session["contact_id"]
    finally:
        await v.close()
    upload_id = new_id()
    data_dir = Path(rg.gw.config.storage.data_dir)
    f = data_dir / "uploads" / t.tenant.id / upload_id
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"%PDF-1.4 invoice")
    async with rg.gw.db.transaction() as db:
        await db.execute("INSERT INTO uploads (id, tenant_id, uploader_type, uploader_id, conversation_id, name, "
                         "mime_type, size, path, created_at) VALUES ($1, $2, 'contact', $3, $4, 'invoice.pdf', "
                         "'application/pdf', 16, $5, $6)", upload_id, t.tenant.id, contact, conv,
                         f"{t.tenant.id}/{upload_id}", time.time())
    return {"tenant": t.tenant.id, "token": t.admin_token, "contact": contact, "conv": conv, "file": str(f)}


async def test_tenant_tables_are_discovered_children_first(rg) -> None:
    ps = privacy_store(rg.gw.db, sqlite=rg.gw.config.embedded)
    async with rg.gw.db.reader() as conn:
        tables = await ps.tenant_tables(conn)
    for t in ("agents", "contacts", "conversations", "messages", "read_positions", "contact_identities",
              "uploads", "privacy_policies"):
        assert t in tables
    assert tables.index("messages") < tables.index("conversations") < tables.index("contacts")
    assert "privacy_audit" not in tables and "tenants" not in tables


async def test_retention_deletes_ended_tenant_rows_and_files_only(rg) -> None:
    gone = await _populate(rg, "Ended")
    kept = await _populate(rg, "Current")
    ps = privacy_store(rg.gw.db, sqlite=rg.gw.config.embedded)
    now = time.time()
    assert await ps.end_tenant(gone["tenant"], now - 3.1 * YEAR)
    assert await ps.end_tenant(kept["tenant"], now - 1.0 * YEAR)  # ended, but not long enough ago
    retention = Retention(ps, LocalBlobs(rg.gw.config.storage.data_dir), 3.0)

    before = await ps.count_tenant_rows(gone["tenant"])
    dry = await retention.run(dry_run=True)
    assert [t.tenant_id for t in dry.tenants] == [gone["tenant"]]
    assert dry.tenants[0].rows == before and before["messages"] == 3 and before["uploads"] == 1
    assert dry.tenants[0].files == 1 and dry.tenants[0].bytes == 16
    assert await ps.count_tenant_rows(gone["tenant"]) == before  # dry run deleted nothing
    assert _exists(gone["file"])

    kept_before = await ps.count_tenant_rows(kept["tenant"])
    report = await retention.run()
    assert report.tenants[0].rows["messages"] == 3
    assert all(n == 0 for n in (await ps.count_tenant_rows(gone["tenant"])).values())
    assert not _exists(gone["file"])
    assert await ps.count_tenant_rows(kept["tenant"]) == kept_before
    assert _exists(kept["file"])
    log = await ps.audit_log(gone["tenant"])
    assert [e.action for e in log] == ["tenant.deleted"]
    assert (await retention.run()).tenants == []  # idempotent


async def test_message_retention_policy_blanks_old_messages(rg) -> None:
    d = await _populate(rg, "Policy")
    ps = privacy_store(rg.gw.db, sqlite=rg.gw.config.embedded)
    await ps.set_policy(d["tenant"], Policy(message_retention_days=30))
    later = Retention(ps, LocalBlobs(rg.gw.config.storage.data_dir), 3.0, clock=lambda: time.time() + 31 * 86400)
    assert (await later.run(dry_run=True)).expired_messages == {d["tenant"]: 3}
    assert (await later.run()).expired_messages == {d["tenant"]: 3}
    msgs = await rg.gw.store.get_messages(d["tenant"], d["conv"], after_seq=0, limit=50)
    assert [m.seq for m in msgs] == [1, 2, 3] and all(m.text == "" for m in msgs)


async def test_a_purge_and_an_expiry_go_in_chunks_and_let_the_loop_run(rg) -> None:
    """Two rows per transaction here: every row still goes, and the event loop runs between
    the chunks (on SQLite each statement runs on the loop)."""
    gone = await _populate(rg, "Big", n=7)
    kept = await _populate(rg, "Neighbour", n=2)
    ps = PrivacyStore(rg.gw.db, sqlite=rg.gw.config.embedded, chunk=2)
    await ps.set_policy(kept["tenant"], Policy(message_retention_days=1))
    expire = asyncio.create_task(ps.expire_messages(kept["tenant"], time.time() + 2 * 86400, dry_run=False))
    assert await expire == 2
    before = await ps.count_tenant_rows(gone["tenant"])
    kept_before = await ps.count_tenant_rows(kept["tenant"])
    assert before["messages"] == 7
    ticks = 0
    purge = asyncio.create_task(ps.delete_tenant_rows(gone["tenant"]))
    while not purge.done():
        ticks += 1
        await asyncio.sleep(0)
    assert await purge == before
    assert ticks >= 4  # the 7 messages alone take 4 transactions of 2
    assert all(n == 0 for n in (await ps.count_tenant_rows(gone["tenant"])).values())
    assert await ps.count_tenant_rows(kept["tenant"]) == kept_before
    msgs = await rg.gw.store.get_messages(kept["tenant"], kept["conv"], after_seq=0, limit=50)
    assert [m.text for m in msgs] == ["", ""]


async def _api(rg, method: str, path: str, token: str, body: object = None) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.request(
        method, rg.url + "/api/v1" + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.read(), resp.content_type


async def test_export_correct_erase_and_audit(rg) -> None:
    d = await _populate(rg, "DSR")
    other = await _populate(rg, "Other")
    tok, cid = d["token"], d["contact"]
    status, body, ctype = await _api(rg, "GET", f"/contacts/{cid}/export", tok)
    assert status == 200, body
    data = json.loads(body)
    assert data["contact"]["name"] == "Nguyễn Văn A"
    assert [i["kind"] for i in data["identities"]] == ["visitor"]
    assert [m["text"] for m in data["conversations"][0]["messages"]] == ["xin chào 0", "xin chào 1", "xin chào 2"]
    assert data["uploads"][0]["name"] == "invoice.pdf"
    status, body, ctype = await _api(rg, "GET", f"/contacts/{cid}/export?format=zip", tok)
    assert status == 200 and ctype == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(body))
    assert "contact.json" in z.namelist()
    assert any(n.startswith("attachments/") and z.read(n) == b"%PDF-1.4 invoice" for n in z.namelist())

    # another tenant's admin cannot see or erase this contact; a non-admin agent may not either
    assert (await _api(rg, "GET", f"/contacts/{cid}/export", other["token"]))[0] == 404
    assert (await _api(rg, "POST", f"/contacts/{cid}/erase", other["token"]))[0] == 404
    _, agent_tok = await rg.agent_token(d["tenant"])
    assert (await _api(rg, "POST", f"/contacts/{cid}/erase", agent_tok))[0] == 403

    # correct (rectification)
    status, body, _ = await _api(rg, "PATCH", f"/contacts/{cid}", tok, {"name": "Trần B"})
    assert status == 200 and json.loads(body)["contact"]["name"] == "Trần B"

    # an email thread of the contact: its subject is the contact's words (issue 32)
    from gateway.core.domain import Channel
    mail = await rg.gw.store.create_conversation(tenant_id=d["tenant"], channel=Channel.EMAIL, contact_id=cid,
                                                 now=time.time(), external_thread_id="m1@example.vn",
                                                 subject="Hoá đơn của Nguyễn Văn A")
    assert mail.subject == "Hoá đơn của Nguyễn Văn A"

    # search finds the contact's words and the contact (issue 32), until the erasure
    async def search(q: str, kind: str = "messages") -> list[Any]:
        status, body, _ = await _api(rg, "GET", f"/search?q={q}&kind={kind}", tok)
        assert status == 200, body
        results: list[Any] = json.loads(body)["results"]
        return results

    assert len(await search("xin chao")) == 3 and len(await search("tran b", "contacts")) == 1

    # erase (default: anonymise)
    status, body, _ = await _api(rg, "POST", f"/contacts/{cid}/erase", tok)
    assert status == 200, body
    erased = json.loads(body)["erased"]
    assert erased["messages_anonymised"] == 3 and erased["uploads"] == 1 and erased["identities"] == 1
    assert not _exists(d["file"]) and _exists(other["file"])
    data = json.loads((await _api(rg, "GET", f"/contacts/{cid}/export", tok))[1])
    assert data["contact"]["name"] is None and data["contact"]["email"] is None and data["identities"] == []
    assert all(m["text"] == "" for m in data["conversations"][0]["messages"])
    assert (await rg.gw.store.get_conversation(d["tenant"], mail.id)).subject is None
    assert await search("xin chao") == [] and await search("tran b", "contacts") == []
    assert await search("a@example.vn", "contacts") == []

    # delete mode removes conversations and the contact
    assert (await _api(rg, "PUT", "/privacy/policy", other["token"], {"erase_mode": "delete"}))[0] == 200
    status, body, _ = await _api(rg, "POST", f"/contacts/{other['contact']}/erase", other["token"])
    assert status == 200 and json.loads(body)["erased"]["messages"] == 3
    assert (await _api(rg, "GET", f"/contacts/{other['contact']}", other["token"]))[0] == 404
    counts = await privacy_store(rg.gw.db, sqlite=rg.gw.config.embedded).count_tenant_rows(other["tenant"])
    assert counts["messages"] == counts["conversations"] == counts["contacts"] == counts["uploads"] == 0

    status, body, _ = await _api(rg, "GET", "/privacy/audit", tok)
    actions = [e["action"] for e in json.loads(body)["entries"]]
    assert sorted(actions) == ["contact.corrected", "contact.erased", "contact.exported", "contact.exported",
                               "contact.exported"]
    assert json.loads(body)["entries"][0]["actor"].startswith("agent:")
    [corrected] = [e for e in json.loads(body)["entries"] if e["action"] == "contact.corrected"]
    # who corrected which fields of whom; never the values (the audit holds no personal data)
    assert corrected["subject"] == cid and corrected["details"] == {"fields": ["name"]}
    assert corrected["actor"] == f"agent:{json.loads((await _api(rg, 'GET', '/me', tok))[1])['agent']['id']}"


def test_cli_tenant_end_and_retention_dry_run(tmp_path) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)

    def cli(*args: str) -> Any:
        out = subprocess.run([sys.executable, "-m", "gateway", *args], env=env, cwd=ROOT, capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        return json.loads(out.stdout)

    t = cli("tenant", "create", "--name", "Old")
    assert cli("tenant", "end", "--tenant", t["tenant_id"], "--at", "2020-01-01T00:00:00Z")["ended_at"] == 1577836800
    (tmp_path / "uploads" / t["tenant_id"]).mkdir(parents=True)
    (tmp_path / "uploads" / t["tenant_id"] / "f").write_bytes(b"12345")
    dry = cli("retention", "run", "--dry-run")
    assert dry["dry_run"] and dry["tenants"][0]["rows"]["agents"] == 1 and dry["tenants"][0]["bytes"] == 5
    done = cli("retention", "run")
    assert done["tenants"][0]["tenant_id"] == t["tenant_id"]
    assert not (tmp_path / "uploads" / t["tenant_id"]).exists()
    assert cli("retention", "run")["tenants"] == []




async def test_erased_text_survives_in_no_page_of_the_sqlite_files(tmp_path, monkeypatch) -> None:
    """SQLite keeps deleted cells in free pages and earlier page versions in the WAL: after
    an erasure (anonymise: texts blanked in place; delete: rows removed) none of the
    contact's words remain anywhere in the database file or its WAL (`secure_delete`, and
    the WAL truncated after the erasure's commit)."""
    monkeypatch.setenv("MASTER_KEY", MASTER_KEY)
    async with run_gateway(make_config(tmp_path)) as rg:
        marker = "dấu-vết-" + uuid.uuid4().hex
        t = await rg.tenant("Secure")
        v = await visitor(rg.url, t.tenant.widget_key, name="Người Xoá")
        try:
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            for i in range(20):
                assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                      "text": f"{marker} {i}"}))["ok"]
            contact = v.session["contact_id"]
        finally:
            await v.close()
        files = [Path(rg.gw.config.sqlite_path), Path(rg.gw.config.sqlite_path + "-wal")]

        def found() -> bool:
            return any(p.exists() and marker.encode() in p.read_bytes() for p in files)

        assert found()  # written: in the WAL or the database file
        for mode in ("anonymise", "delete"):
            assert (await _api(rg, "PUT", "/privacy/policy", t.admin_token, {"erase_mode": mode}))[0] == 200
            if mode == "delete":  # a second contact's messages to delete outright
                v = await visitor(rg.url, t.tenant.widget_key)
                try:
                    conv = (await v.call("conversation:start"))["conversation"]["id"]
                    assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                          "text": f"{marker} again"}))["ok"]
                    contact = v.session["contact_id"]
                finally:
                    await v.close()
            status, body, _ = await _api(rg, "POST", f"/contacts/{contact}/erase", t.admin_token)
            assert status == 200, body
            assert not found(), mode
