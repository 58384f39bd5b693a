"""Erasure of a contact on every channel (email, Messenger, Zalo, YouTube, IZIComment,
widget, calls), in both erase modes, on SQLite and PostgreSQL: a unique marker is planted
in everything the contact can leave behind (address, name, subject, Message-IDs, thread and
message ids, texts, attachment names and contents, recordings), and after the erasure no
table and no stored file holds it. An anonymised contact is never mailed again."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import pytest

from connectors.base import Attachment, InboundMessage
from gateway.config import Config
from gateway.core.domain import Channel
from gateway.privacy.dsr import ERASED_ERROR
from gateway.privacy.store import privacy_store
from gateway.store.rows import new_id
from tests.connectors.smtp_sink import smtp_sink
from tests.connectors.test_email_flow import add_inbox, agent_upload, email_connector, hub_of, smtp_send
from tests.support.server import RunningGateway, agent, new_client_id, run_gateway, visitor

MODES = ["anonymise", "delete"]


async def until_async(predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """`until` for a condition read from the database."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def new_marker() -> str:
    return f"zq{uuid.uuid4().hex[:10]}"


async def api(rg: RunningGateway, method: str, path: str, token: str, body: object = None
              ) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.request(
        method, rg.url + "/api/v1" + path, json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.read()


async def erase(rg: RunningGateway, token: str, contact_id: str, mode: str) -> dict[str, int]:
    assert (await api(rg, "PUT", "/privacy/policy", token, {"erase_mode": mode}))[0] == 200
    status, body = await api(rg, "POST", f"/contacts/{contact_id}/erase", token)
    assert status == 200, body
    erased: dict[str, int] = json.loads(body)["erased"]
    return erased


def is_database_file(path: Path, data_dir: Path) -> bool:
    """The SQLite database and its journal (whose free pages are another matter)."""
    return path.parent == data_dir and path.name.startswith("gateway.sqlite3")


async def where_is(rg: RunningGateway, marker: str) -> list[str]:
    """Every column of every table (all rows) and every stored file (name and bytes) that
    holds `marker`."""
    hits: list[str] = []
    ps = privacy_store(rg.gw.db, sqlite=rg.gw.config.embedded)
    async with rg.gw.db.reader() as conn:
        cols, _ = await ps.schema(conn)
        for table, names in sorted(cols.items()):
            for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                for c in sorted(names):
                    v = row[c]
                    if v is not None and marker in str(v).lower():
                        hits.append(f"{table}.{c}")
    hits += await asyncio.to_thread(files_holding, Path(rg.gw.config.storage.data_dir), marker)
    return sorted(set(hits))


def files_holding(data_dir: Path, marker: str) -> list[str]:
    hits = []
    for path in sorted(data_dir.rglob("*")):
        if is_database_file(path, data_dir):
            continue
        if marker in path.name.lower() or (path.is_file() and marker.encode() in path.read_bytes().lower()):
            hits.append(str(path.relative_to(data_dir)))
    return hits


def customer_mail(marker: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = f"Khách {marker} <{marker}@example.vn>"
    m["To"] = "Support <support@shop.test>"
    m["Subject"] = f"Đơn hàng {marker}"
    m["Message-ID"] = f"<{marker}.1@example.vn>"
    m.set_content(f"Chào shop, tôi là {marker}.")
    m.add_attachment(f"%PDF-1.4 hoá đơn của {marker}".encode(), maintype="application", subtype="pdf",
                     filename=f"{marker}-invoice.pdf")
    return m


@pytest.mark.parametrize("mode", MODES)
async def test_an_email_contact_is_erased_everywhere_and_never_mailed_again(cx_config: Config, mode: str) -> None:
    marker = new_marker()
    async with smtp_sink() as sink, run_gateway(cx_config) as rg:
        port = email_connector(rg).smtp_port
        assert port
        nt = await rg.tenant()
        await add_inbox(rg, nt.tenant.id, sink)
        ag = await agent(rg.url, nt.admin_token)
        try:
            await smtp_send(port, customer_mail(marker))
            await ag.wait_for(lambda: ag.of("conversation:created"), timeout=20)
            conv_id = ag.of("conversation:created")[0]["id"]
            assert (await ag.call("conversation:watch", {"conversation_id": conv_id}))["ok"]
            sent = (await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                   "text": "Chào anh"}))["message"]["id"]
            await ag.wait_for(lambda: any(e["id"] == sent and e["delivery"]["state"] == "sent"
                                          for e in ag.of("message:updated")), timeout=20)
            assert [r for r, _ in sink.received] == [[f"{marker}@example.vn"]]

            # a second reply the relay keeps refusing for now: a pending outbox row
            sink.refuse_code = "451 4.3.0 try again later"
            pending = (await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                      "text": "Anh còn đó không?"}))["message"]["id"]
            outbox = hub_of(rg).outbox

            async def refused_once() -> bool:
                row = await outbox.get(pending)
                return row is not None and row.attempts >= 1 and row.last_error is not None

            await until_async(refused_once)
            contact_id = (await rg.gw.store.get_conversation(nt.tenant.id, conv_id)).contact_id
            assert await where_is(rg, marker)  # the marker is planted

            # the export holds the attachment file it lists
            status, body = await api(rg, "GET", f"/contacts/{contact_id}/export?format=zip", nt.admin_token)
            assert status == 200
            z = zipfile.ZipFile(io.BytesIO(body))
            [att] = [n for n in z.namelist() if n.startswith("attachments/")]
            assert z.read(att) == f"%PDF-1.4 hoá đơn của {marker}".encode()

            erased = await erase(rg, nt.admin_token, contact_id, mode)
            assert erased["files"] == 1 and erased["identities"] == 1
            assert await where_is(rg, marker) == []
            sink.refuse_code = None
            before = len(sink.received)
            if mode == "anonymise":
                assert erased["thread_ids"] == 2 and erased["links"] == 1 and erased["outbox_cancelled"] == 1
                row = await outbox.get(pending)
                assert row is not None and row.state == "failed" and row.last_error == ERASED_ERROR
                # a later reply is refused with a typed error before it is stored, and not mailed
                stored = len(await rg.gw.store.get_messages(nt.tenant.id, conv_id))
                r = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                   "text": "Xin chào lần nữa"})
                assert r["ok"] is False and r["error"]["code"] == "contact_erased", r
                status, _ = await api(rg, "POST", f"/conversations/{conv_id}/messages", nt.admin_token,
                                      {"client_id": new_client_id(), "text": "qua REST"})
                assert status == 410
                assert len(await rg.gw.store.get_messages(nt.tenant.id, conv_id)) == stored
                assert await outbox.run_once() == 0
            else:
                assert erased["messages"] == 3 and erased["contact_deleted"] == 1
                assert await outbox.get(pending) is None
                r = await ag.call("message:send", {"conversation_id": conv_id, "client_id": new_client_id(),
                                                   "text": "Xin chào lần nữa"})
                assert r["ok"] is False and r["error"]["code"] == "not_found"
                assert await outbox.run_once() == 0
            assert len(sink.received) == before
        finally:
            await ag.close()


CHANNELS = [Channel.FACEBOOK, Channel.ZALO, Channel.YOUTUBE, Channel.COMMENTS]


async def plant_connector_contacts(rg: RunningGateway, tenant_id: str, token: str,
                                   markers: dict[str, str]) -> dict[str, str]:
    """One contact per connector channel, each with an inbound message (text, attachment,
    name, thread and message ids carrying the channel's marker), an agent reply, and on YouTube the
    comment and thread ids in the polling checkpoint. Contact id per channel."""
    hub = hub_of(rg)
    out: dict[str, str] = {}
    ag = await agent(rg.url, token)
    try:
        for ch in CHANNELS:
            marker = markers[ch.value]
            res = await hub.ctx.inbound.deliver(InboundMessage(
                tenant_id=tenant_id, channel=ch, external_thread_id=f"thread-{ch.value}-{marker}",
                external_author_id=f"user-{ch.value}-{marker}", external_message_id=f"mid-{ch.value}-{marker}",
                text=f"Xin chào {marker}", sent_at=time.time(), author_name=f"Khách {marker}",
                attachments=(Attachment(kind="image", url=f"https://cdn.example.vn/{marker}.png",
                                        name=f"{marker}.png"),),
            ))
            out[ch.value] = res.conversation.contact_id
            r = await ag.call("message:send", {"conversation_id": res.conversation.id,
                                               "client_id": new_client_id(), "text": "Chào bạn"})
            assert r["ok"], r
    finally:
        await ag.close()
    marker = markers[Channel.YOUTUBE.value]
    state = {"v": 1, "high_water": time.time(), "floor": None,
             "seen": ["other-comment", f"mid-youtube-{marker}"],
             "threads": {f"thread-youtube-{marker}": 1, "other-thread": 2}}
    async with rg.gw.db.transaction() as conn:
        await conn.execute("INSERT INTO youtube_checkpoints (tenant_id, source, state, updated_at) VALUES "
                           "($1, 'channel:UCx', $2, $3)", tenant_id, json.dumps(state), time.time())
    return out


@pytest.mark.parametrize("mode", MODES)
async def test_connector_contacts_are_erased_everywhere(cx_config: Config, mode: str) -> None:
    async with run_gateway(cx_config) as rg:
        nt = await rg.tenant()
        markers = {ch.value: new_marker() for ch in CHANNELS}
        contacts = await plant_connector_contacts(rg, nt.tenant.id, nt.admin_token, markers)
        for ch in CHANNELS:
            assert await where_is(rg, markers[ch.value])
        for ch in CHANNELS:
            erased = await erase(rg, nt.admin_token, contacts[ch.value], mode)
            assert erased["identities"] == 1
            if ch == Channel.YOUTUBE:
                assert erased["checkpoint_ids"] == 2
            assert await where_is(rg, markers[ch.value]) == [], ch
        async with rg.gw.db.reader() as conn:
            [row] = await conn.fetch("SELECT state FROM youtube_checkpoints WHERE tenant_id = $1", nt.tenant.id)
            state = json.loads(row["state"])
            left = await conn.fetch("SELECT state FROM connector_outbox WHERE tenant_id = $1 AND state IN "
                                    "('queued', 'sending')", nt.tenant.id)
        assert len(left) == 0
        assert "other-comment" in state["seen"] and "other-thread" in state["threads"]


@pytest.mark.parametrize("mode", MODES)
async def test_widget_and_call_contact_is_erased_everywhere(cx_config: Config, mode: str) -> None:
    marker = new_marker()
    async with run_gateway(cx_config) as rg:
        nt = await rg.tenant()
        tid = nt.tenant.id
        v = await visitor(rg.url, nt.tenant.widget_key, name=f"Khách {marker}", email=f"{marker}@example.vn")
        try:
            conv = (await v.call("conversation:start"))["conversation"]["id"]
            assert (await v.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                                  "text": f"xin chào {marker}"}))["ok"]
            contact = v.session["contact_id"]
        finally:
            await v.close()
        # the agent sends the contact a file named after it
        upload = await agent_upload(rg.url, nt.admin_token, f"{marker}-quote.pdf", "application/pdf",
                                    f"%PDF-1.4 báo giá cho {marker}".encode())
        ag = await agent(rg.url, nt.admin_token)
        try:
            r = await ag.call("message:send", {"conversation_id": conv, "client_id": new_client_id(),
                                               "text": "Báo giá", "attachments": [upload]})
            assert r["ok"], r
        finally:
            await ag.close()
        data_dir = Path(rg.gw.config.storage.data_dir)
        upload_id, key_id, call_id, rec_id = new_id(), new_id(), new_id(), new_id()
        (data_dir / "uploads" / tid).mkdir(parents=True, exist_ok=True)
        (data_dir / "uploads" / tid / upload_id).write_bytes(f"upload {marker}".encode())
        (data_dir / "recordings" / tid).mkdir(parents=True)
        (data_dir / "recordings" / tid / f"{rec_id}.age").write_bytes(f"recording {marker}".encode())
        now = time.time()
        async with rg.gw.db.transaction() as db:
            await db.execute("INSERT INTO uploads (id, tenant_id, uploader_type, uploader_id, conversation_id, name, "
                             "mime_type, size, path, created_at) VALUES ($1, $2, 'contact', $3, $4, $5, "
                             "'application/pdf', 16, $6, $7)", upload_id, tid, contact, conv, f"{marker}.pdf",
                             f"{tid}/{upload_id}", now)
            await db.execute("INSERT INTO recording_keys (id, tenant_id, recipient, identity_sealed, created_at) "
                             "VALUES ($1, $2, 'age1x', 'sealed', $3)", key_id, tid, now)
            await db.execute("INSERT INTO calls (id, tenant_id, conversation_id, contact_id, agent_id, node_id, state, "
                             "started_at, answered_at, ended_at, end_reason, duration, recording_id) VALUES "
                             "($1, $2, $3, $4, $5, 'n1', 'ended', $6, $7, $8, 'hangup', 42.5, $9)",
                             call_id, tid, conv, contact, nt.admin.id, now - 60, now - 50, now - 7.5, rec_id)
            await db.execute("INSERT INTO recordings (id, tenant_id, call_id, key_id, blob_key, state, size, "
                             "duration, sha256, created_at) VALUES ($1, $2, $3, $4, $5, 'complete', 16, 42.5, NULL, "
                             "$6)", rec_id, tid, call_id, key_id, f"{tid}/{rec_id}.age", now)
        # the export carries the call record beside the recording id
        status, body = await api(rg, "GET", f"/contacts/{contact}/export", nt.admin_token)
        assert status == 200
        [call] = json.loads(body)["calls"]
        assert call["id"] == call_id and call["agent_id"] == nt.admin.id and call["end_reason"] == "hangup"
        assert call["duration"] == 42.5 and call["recording_id"] == rec_id and call["ended_at"] == now - 7.5
        assert json.loads(body)["recordings"] == [rec_id]

        assert await where_is(rg, marker)
        erased = await erase(rg, nt.admin_token, contact, mode)
        assert erased["files"] == 3 and erased["recordings"] == 1 and erased["uploads"] == 2
        assert await where_is(rg, marker) == []


