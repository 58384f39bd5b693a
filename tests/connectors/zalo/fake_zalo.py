"""A local fake of the Zalo OA Open API + OAuth v4 that speaks the real wire formats.

* `POST /v3.0/oa/message/cs`: token in the `access_token` header; HTTP 200 with
  `{"data": {...}, "error": 0, "message": "Success"}` or `{"error": <code>, "message": ...}`.
* `POST /v4/oa/access_token`: form `app_id`, `grant_type=refresh_token`, `refresh_token`,
  header `secret_key`; answers top-level `access_token`, `refresh_token`, `expires_in` (a
  string of seconds) and rotates: the old refresh token is dead afterwards.
* `sign()` / `event_*()` build webhook bodies signed exactly like Zalo.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

APP_ID = "1234567890123456789"
OA_ID = "4000000000000000001"
USER_ID = "8000000000000000001"
OA_SECRET = "test-oa-secret"
APP_SECRET = "test-app-secret"

ERR_TEXT = {
    -32: "The app has reached limit call api",
    -201: "user_id is invalid!",
    -213: "User has not followed OA",
    -216: "Access token is invalid",
    -217: "User has blocked invitations from this OA",
    -220: "access_token is expired or removed",
    -230: "User has not interacted with the OA in the past 7 days",
    -211: "Out of quota",
}


# --- webhook signing ---------------------------------------------------------------------
def sign(raw: bytes, timestamp: str, app_id: str = APP_ID, oa_secret: str = OA_SECRET) -> str:
    """`X-ZEvent-Signature` value: `mac=` + hex sha256(app_id + raw body + timestamp + OA secret)."""
    return "mac=" + hashlib.sha256(app_id.encode() + raw + timestamp.encode() + oa_secret.encode()).hexdigest()


def dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def now_ms() -> str:
    return str(int(time.time() * 1000))


def event_text(
    text: str,
    msg_id: str | None = None,
    *,
    user: str = USER_ID,
    oa: str = OA_ID,
    ts: str | None = None,
    app_id: str = APP_ID,
) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "user_id_by_app": "5000000000000000001",
        "event_name": "user_send_text",
        "timestamp": ts or now_ms(),
        "sender": {"id": user},
        "recipient": {"id": oa},
        "message": {"msg_id": msg_id or secrets.token_hex(10), "text": text},
    }


def event_image(
    url: str,
    caption: str = "",
    msg_id: str | None = None,
    *,
    user: str = USER_ID,
    oa: str = OA_ID,
    ts: str | None = None,
) -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "user_id_by_app": "5000000000000000001",
        "event_name": "user_send_image",
        "timestamp": ts or now_ms(),
        "sender": {"id": user},
        "recipient": {"id": oa},
        "message": {
            "msg_id": msg_id or secrets.token_hex(10),
            "text": caption,
            "attachments": [{"type": "image", "payload": {"url": url, "thumbnail": url + "?t"}}],
        },
    }


def signed(event: dict[str, Any], *, app_id: str = APP_ID, oa_secret: str = OA_SECRET) -> tuple[bytes, dict[str, str]]:
    raw = dumps(event)
    headers = {
        "Content-Type": "application/json",
        "X-ZEvent-Signature": sign(raw, str(event["timestamp"]), app_id, oa_secret),
    }
    return raw, headers


# --- the fake API ------------------------------------------------------------------------
@dataclass
class Failure:
    code: int | None = None  # Zalo error code (HTTP 200), or
    status: int | None = None  # an HTTP status (5xx, 429)


@dataclass
class FakeZalo:
    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    clock: Callable[[], float] = time.time
    token_lifetime: int = 90000
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expires_at
    refresh_tokens: set[str] = field(default_factory=set)  # currently valid (single use)
    spent_refresh_tokens: set[str] = field(default_factory=set)
    user_errors: dict[str, int] = field(default_factory=dict)  # user_id -> error code for sends
    failures: list[Failure] = field(default_factory=list)  # consumed one per send
    upload_failures: list[Failure] = field(default_factory=list)  # consumed one per upload
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted message bodies (+ message_id)
    uploads: dict[str, tuple[str, str, str, bytes]] = field(default_factory=dict)  # id/token -> kind, name, type, bytes
    send_calls: int = 0
    refresh_calls: int = 0
    refresh_errors: list[dict[str, Any]] = field(default_factory=list)
    refresh_gate: asyncio.Event | None = None  # set: a valid refresh is answered only once it is set
    oa_id: str = OA_ID  # what getoa answers
    url: str = ""

    # test controls
    def issue(self, lifetime: float | None = None) -> tuple[str, str, float]:
        """Mint a valid access + refresh token pair (as if from the consent flow)."""
        at, rt = "AT-" + secrets.token_urlsafe(24), "RT-" + secrets.token_urlsafe(24)
        exp = self.clock() + (self.token_lifetime if lifetime is None else lifetime)
        self.access_tokens[at] = exp
        self.refresh_tokens.add(rt)
        return at, rt, exp

    def expire(self, access_token: str) -> None:
        self.access_tokens[access_token] = self.clock() - 1

    def fail_next(self, n: int = 1, *, code: int | None = None, status: int | None = None) -> None:
        self.failures.extend(Failure(code, status) for _ in range(n))

    # handlers
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3.0/oa/message/cs", self._send)
        app.router.add_post("/v2.0/oa/upload/image", functools.partial(self._upload, "image"))
        app.router.add_post("/v2.0/oa/upload/file", functools.partial(self._upload, "file"))
        app.router.add_post("/v4/oa/access_token", self._token)
        app.router.add_get("/v2.0/oa/getoa", self._getoa)
        return app

    async def _getoa(self, request: web.Request) -> web.Response:
        """The OA's profile (`data.oa_id`, `data.name`, ...) for its access token."""
        if (err := self._token_error(request)) is not None:
            return err
        return web.json_response({"data": {"oa_id": self.oa_id, "name": "Shop OA", "description": "",
                                           "is_verified": True, "num_follower": 12},
                                  "error": 0, "message": "Success"})

    @staticmethod
    def _err(code: int, message: str | None = None) -> web.Response:
        return web.json_response({"error": code, "message": message or ERR_TEXT.get(code, "error")})

    def _token_error(self, request: web.Request) -> web.Response | None:
        exp = self.access_tokens.get(request.headers.get("access_token", ""))
        if exp is None:
            return self._err(-216)
        if exp <= self.clock():
            return self._err(-220)
        return None

    async def _upload(self, kind: str, request: web.Request) -> web.Response:
        """`upload/image` → `data.attachment_id`, `upload/file` → `data.token` (multipart `file`)."""
        if (err := self._token_error(request)) is not None:
            return err
        if self.upload_failures:
            failure = self.upload_failures.pop(0)
            if failure.status is not None:
                return web.json_response({"error": -1, "message": "server error"}, status=failure.status)
            assert failure.code is not None
            return self._err(failure.code)
        if not request.content_type.startswith("multipart/"):
            return self._err(-201, "file is invalid!")
        form = await request.post()
        f = form.get("file")
        if not isinstance(f, web.FileField):
            return self._err(-201, "file is invalid!")
        data = f.file.read()
        if not data:
            return self._err(-201, "file is invalid!")
        ref = secrets.token_hex(12)
        self.uploads[ref] = (kind, f.filename, f.content_type, data)
        key = "attachment_id" if kind == "image" else "token"
        return web.json_response({"data": {key: ref}, "error": 0, "message": "Success"})

    def _attachment_ok(self, attachment: Any) -> bool:
        if not isinstance(attachment, dict):
            return False
        payload = attachment.get("payload") or {}
        if attachment.get("type") == "file":
            up = self.uploads.get(payload.get("token", ""))
            return up is not None and up[0] == "file"
        if attachment.get("type") == "template" and payload.get("template_type") == "media":
            elements = payload.get("elements") or [{}]
            up = self.uploads.get(elements[0].get("attachment_id", ""))
            return up is not None and up[0] == "image" and elements[0].get("media_type") == "image"
        return False

    async def _send(self, request: web.Request) -> web.Response:
        self.send_calls += 1
        if (err := self._token_error(request)) is not None:
            return err
        if self.failures:
            f = self.failures.pop(0)
            if f.status is not None:
                return web.json_response({"error": -1, "message": "server error"}, status=f.status)
            assert f.code is not None
            return self._err(f.code)
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._err(-201, "body is invalid!")
        user = (body.get("recipient") or {}).get("user_id")
        message = body.get("message") or {}
        text = message.get("text")
        if not isinstance(user, str) or not user.isdigit():
            return self._err(-201, "user_id is invalid!")
        if "attachment" in message:
            if not self._attachment_ok(message["attachment"]):
                return self._err(-100, "attachment_id was expired")
        elif not isinstance(text, str) or not text or len(text) > 2000:
            return self._err(-201, "text is invalid!")
        if user in self.user_errors:
            return self._err(self.user_errors[user])
        mid = secrets.token_hex(16)
        self.sent.append({**body, "message_id": mid})
        return web.json_response(
            {
                "data": {
                    "message_id": mid,
                    "user_id": user,
                    "sent_time": str(int(self.clock() * 1000)),
                    "quota": {"quota_type": "reply", "remain": "8", "total": "8"},
                },
                "error": 0,
                "message": "Success",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.refresh_calls += 1
        form = await request.post()
        if request.headers.get("secret_key") != self.app_secret or form.get("app_id") != self.app_id:
            return self._refresh_error(-14004, "Invalid app secret key")  # code assumed
        if form.get("grant_type") != "refresh_token":
            return self._refresh_error(-14001, "Invalid grant type")  # code assumed
        rt = str(form.get("refresh_token", ""))
        if rt not in self.refresh_tokens:
            return self._refresh_error(-14014, "Invalid refresh token")  # code assumed
        self.refresh_tokens.discard(rt)
        self.spent_refresh_tokens.add(rt)
        if self.refresh_gate is not None:  # spent at once; the answer is held (a slow network)
            await self.refresh_gate.wait()
        at, new_rt, _ = self.issue()
        return web.json_response({"access_token": at, "refresh_token": new_rt, "expires_in": str(self.token_lifetime)})

    def _refresh_error(self, code: int, name: str) -> web.Response:
        body = {"error": code, "error_name": name, "error_reason": name, "ref_doc": "", "error_description": name}
        self.refresh_errors.append(body)
        return web.json_response(body)


@contextlib.asynccontextmanager
async def run_fake_zalo(fake: FakeZalo | None = None) -> AsyncIterator[FakeZalo]:
    fake = fake or FakeZalo()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()
