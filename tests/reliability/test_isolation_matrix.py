"""Isolation matrix: an agent or a visitor of tenant A can neither read, write, watch,
download nor enumerate tenant B's data, over REST and Socket.IO. Every refusal looks like a
missing object (`not_found`) or a refused credential, and B's stored data never changes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from gateway.store.rows import new_id
from tests.reliability.threaded import ThreadedGateway, threaded_gateway_running
from tests.support.server import Client, agent, new_client_id, visitor


@dataclass
class World:
    tg: ThreadedGateway
    agent_a: Client
    visitor_a: Client
    visitor_a_token: str
    b_contact: str
    b_upload: str
    b_recording: str
    b_canned: str


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with threaded_gateway_running(tmp_path_factory.mktemp("iso")) as tg:
        b = tg.b.tenant.id

        async def setup() -> World:
            conv = await tg.rg.gw.store.get_conversation(b, tg.b_conversation)
            upload, key, rec, canned = new_id(), new_id(), new_id(), new_id()
            async with tg.rg.gw.db.transaction() as db:
                await db.execute("INSERT INTO uploads (id, tenant_id, uploader_type, uploader_id, conversation_id, "
                                 "name, mime_type, size, path, created_at) VALUES ($1, $2, 'contact', $3, $4, "
                                 "'b.pdf', 'application/pdf', 1, $5, $6)", upload, b, conv.contact_id, conv.id,
                                 f"{b}/{upload}", time.time())
                await db.execute("INSERT INTO recording_keys (id, tenant_id, recipient, identity_sealed, created_at) "
                                 "VALUES ($1, $2, 'age1x', 'sealed', $3)", key, b, time.time())
                await db.execute("INSERT INTO calls (id, tenant_id, conversation_id, contact_id, node_id, state, "
                                 "started_at) VALUES ($1, $2, $3, $4, 'n', 'ended', $5)", new_id(), b, conv.id,
                                 conv.contact_id, time.time())
                await db.execute("INSERT INTO recordings (id, tenant_id, call_id, key_id, blob_key, state, size, "
                                 "duration, created_at) VALUES ($1, $2, 'c', $3, $4, 'complete', 1, 1.0, $5)",
                                 rec, b, key, f"{b}/{rec}.age", time.time())
                await db.execute("INSERT INTO conversation_ratings (tenant_id, conversation_id, seq, contact_id, "
                                 "score, comment, created_at) VALUES ($1, $2, 1, $3, 5, 'b', $4)", b, conv.id,
                                 conv.contact_id, time.time())
                await db.execute("INSERT INTO canned_responses (id, tenant_id, shortcut, text, created_at, updated_at)"
                                 " VALUES ($1, $2, 'b-secret', 'B only', 1, 1)", canned, b)
                await db.execute("INSERT INTO conversation_labels (tenant_id, conversation_id, label, created_at)"
                                 " VALUES ($1, $2, 'b-secret-label', 1)", b, conv.id)
            ag = await agent(tg.rg.url, tg.a.admin_token)
            v = await visitor(tg.rg.url, tg.a.tenant.widget_key)
            return World(tg, ag, v, v.session["visitor_token"], conv.contact_id, upload, rec, canned)

        w = tg.run(setup())
        yield w
        tg.run(w.agent_a.close())
        tg.run(w.visitor_a.close())


def _b_ids(w: World) -> dict[str, str]:
    return {"conv": w.tg.b_conversation, "contact": w.b_contact, "upload": w.b_upload, "recording": w.b_recording,
            "agent": w.tg.b.admin.id, "canned": w.b_canned}


SOCKET_CASES: list[tuple[str, str, Any]] = [
    # (namespace, event, payload template: "{conv}" etc. are B's ids)
    (ns, event, payload)
    for ns in ("/agent", "/visitor")
    for event, payload in [
        ("conversation:watch", {"conversation_id": "{conv}"}),
        ("messages:history", {"conversation_id": "{conv}"}),
        ("message:send", {"conversation_id": "{conv}", "client_id": "{uuid}", "text": "intrusion"}),
        ("read", {"conversation_id": "{conv}", "seq": 1}),
        ("typing", {"conversation_id": "{conv}"}),
        ("resume", {"conversations": [{"conversation_id": "{conv}", "seq": 0}]}),
    ]
] + [
    ("/agent", "conversation:get", {"conversation_id": "{conv}"}),
    ("/agent", "conversation:status", {"conversation_id": "{conv}", "status": "resolved"}),
    ("/agent", "conversation:assign", {"conversation_id": "{conv}", "agent_id": "{agent}"}),
    ("/visitor", "conversation:rate", {"conversation_id": "{conv}", "score": 1}),
    ("/agent", "label:add", {"conversation_id": "{conv}", "label": "intrusion"}),
    ("/agent", "label:remove", {"conversation_id": "{conv}", "label": "b-secret-label"}),
    ("/agent", "conversation:reads", {"conversation_id": "{conv}"}),
    ("/agent", "contact:profile", {"contact_id": "{contact}"}),
]


def _fill(obj: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(obj).replace("{uuid}", new_client_id())
    for k, v in ids.items():
        text = text.replace("{" + k + "}", v)
    return json.loads(text)


@pytest.mark.parametrize(("namespace", "event", "payload"), SOCKET_CASES,
                         ids=[f"{n[1:]}-{e}" for n, e, _ in SOCKET_CASES])
def test_socket_cross_tenant(world: World, namespace: str, event: str, payload: Any) -> None:
    tg = world.tg
    client = world.agent_a if namespace == "/agent" else world.visitor_a
    before = tg.snapshot()
    ack = tg.run(client.call(event, _fill(payload, _b_ids(world))))
    err = ack["results"][0]["error"] if event == "resume" else ack.get("error")
    assert err is not None and err["code"] == "not_found", ack
    assert tg.snapshot() == before
    leaked = json.dumps(client.events, default=str)
    assert world.tg.b_conversation not in leaked and world.b_contact not in leaked


def _agent_headers(w: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {w.tg.a.admin_token}"}


def _visitor_headers(w: World) -> dict[str, str]:
    return {"X-Widget-Key": w.tg.a.tenant.widget_key, "X-Visitor-Token": w.visitor_a_token}


REST_CASES: list[tuple[str, str, str, Any]] = [
    # (actor, method, path, body): read, write, download
    (actor, method, path, body)
    for actor in ("agent", "visitor")
    for method, path, body in [
        ("GET", "/conversations/{conv}", None),
        ("PATCH", "/conversations/{conv}", {"status": "resolved"}),
        ("GET", "/conversations/{conv}/messages", None),
        ("POST", "/conversations/{conv}/messages", {"client_id": "{uuid}", "text": "intrusion"}),
        ("POST", "/conversations/{conv}/read", {"seq": 1}),
        ("GET", "/contacts/{contact}", None),
        ("PATCH", "/contacts/{contact}", {"name": "pwned"}),
        ("GET", "/contacts/{contact}/export", None),
        ("GET", "/contacts/{contact}/export?format=zip", None),
        ("POST", "/contacts/{contact}/erase", None),
        ("GET", "/uploads/{upload}", None),
        ("GET", "/uploads/{upload}/link", None),
        ("GET", "/recordings/{recording}", None),
        ("GET", "/conversations/{conv}/ratings", None),
        ("PATCH", "/canned-responses/{canned}", {"text": "pwned"}),
        ("DELETE", "/canned-responses/{canned}", None),
    ]
]


@pytest.mark.parametrize(("actor", "method", "path", "body"), REST_CASES,
                         ids=[f"{a}-{m}-{p}" for a, m, p, _ in REST_CASES])
def test_rest_cross_tenant(world: World, actor: str, method: str, path: str, body: Any) -> None:
    tg = world.tg
    ids = _b_ids(world)
    headers = _agent_headers(world) if actor == "agent" else _visitor_headers(world)
    before = tg.snapshot()
    url = tg.rg.url + "/api/v1" + _fill(path, ids)
    r = requests.request(method, url, headers=headers, json=_fill(body, ids) if body else None, timeout=10)
    if actor == "agent":
        assert r.status_code == 404, (r.status_code, r.text[:300])
    else:  # a visitor has no agent API at all; where it has (uploads) B's objects do not exist for it
        assert r.status_code in (401, 403, 404), (r.status_code, r.text[:300])
    assert r.json()["ok"] is False
    assert tg.snapshot() == before


ENUMERATIONS = ["/conversations", "/conversations?contact_id={contact}", "/contacts", "/contacts?limit=200",
                "/agents", "/privacy/audit", "/me", "/privacy/policy", "/ratings", "/canned-responses"]


@pytest.mark.parametrize("path", ENUMERATIONS)
def test_rest_enumeration_shows_only_own_tenant(world: World, path: str) -> None:
    tg = world.tg
    r = requests.get(tg.rg.url + "/api/v1" + _fill(path, _b_ids(world)), headers=_agent_headers(world), timeout=10)
    assert r.status_code == 200, r.text
    text = r.text
    for value in (*_b_ids(world).values(), tg.b.tenant.id):
        assert value not in text, (path, value)


def test_socket_enumeration_shows_only_own_tenant(world: World) -> None:
    tg = world.tg
    for client, event, payload in [(world.agent_a, "conversation:list", {}),
                                   (world.agent_a, "conversation:list", {"contact_id": world.b_contact}),
                                   (world.agent_a, "agent:list", None), (world.visitor_a, "conversation:list", None),
                                   (world.agent_a, "session:get", None), (world.visitor_a, "session:get", None),
                                   (world.visitor_a, "agent:profiles", {"ids": [tg.b.admin.id]})]:
        ack = tg.run(client.call(event, payload))
        assert ack["ok"], ack
        text = json.dumps(ack)
        for value in (*_b_ids(world).values(), tg.b.tenant.id):
            assert value not in text, (event, value)
    # labels: B's names are neither listed nor found (the requested id is only echoed, with no label)
    listed = tg.run(world.agent_a.call("label:list", {"conversation_ids": [tg.b_conversation]}))
    assert listed == {"ok": True, "labels": {tg.b_conversation: []}, "names": []}
    found = tg.run(world.agent_a.call("label:conversations", {"label": "b-secret-label"}))
    assert found["ok"] and found["conversation_ids"] == []


def test_positive_control_tenant_b_sees_its_own(world: World) -> None:
    tg = world.tg
    r = requests.get(f"{tg.rg.url}/api/v1/conversations/{tg.b_conversation}",
                     headers={"Authorization": f"Bearer {tg.b.admin_token}"}, timeout=10)
    assert r.status_code == 200
    r = requests.get(f"{tg.rg.url}/api/v1/contacts/{world.b_contact}/export",
                     headers={"Authorization": f"Bearer {tg.b.admin_token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["uploads"][0]["id"] == world.b_upload
