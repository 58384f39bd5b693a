"""A local fake of the Graph API endpoints the Facebook connector calls, plus Meta-style webhook signing.

Speaks the real wire formats (docs/connectors.md, "Facebook"):

* ``POST /{vNN.N}/me/messages`` and ``POST /{vNN.N}/{page-id}/messages`` (Send API) →
  ``{"recipient_id", "message_id"}``;
* ``POST /{vNN.N}/{comment-id}/comments`` (public comment reply) → ``{"id"}``;
* ``GET /{vNN.N}/me`` → the token's Page ``{"id", "name"}``; with ``appsecret_proof`` (checked
  when `app_secret` is set) a wrong proof is code 100 "Invalid appsecret_proof …";
* errors as ``{"error": {"message", "type", "code", "error_subcode"?, "fbtrace_id"}}`` with the real codes
  (2500 no token, 190 bad/expired token, 100 bad parameter / 2018001 no matching user / 33 unknown object,
  10/2018278 outside the window, 551 person unavailable, 613 / 4 rate limits, 1200 temporary failure, 2 + 5xx).

The access token is taken from the ``access_token`` query/form parameter or an ``Authorization: Bearer``
header, like Graph. Every request is recorded in ``calls`` (failed ones too).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

VERSION_RE = re.compile(r"^v\d+\.\d+$")
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
ATTACHMENT_TYPES = ("image", "audio", "video", "file", "template")


# -- webhook signing, exactly as Meta does it -------------------------------------------------------


def encode_payload(payload: Any) -> bytes:
    """Meta's serialisation: non-ASCII escaped as lowercase ``\\uXXXX``, ``/`` escaped as ``\\/``."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for `body` (HMAC-SHA256 of the bytes sent, App Secret as key)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def sign_sha1(app_secret: str, body: bytes) -> str:
    """The legacy ``X-Hub-Signature`` value (HMAC-SHA1)."""
    return "sha1=" + hmac.new(app_secret.encode(), body, hashlib.sha1).hexdigest()


def signed_headers(app_secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(app_secret, body),
        "X-Hub-Signature": sign_sha1(app_secret, body),
    }


# -- the fake server --------------------------------------------------------------------------------


@dataclass
class GraphCall:
    method: str
    path: str
    version: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # decoded JSON / form, or None
    token: str | None
    status: int = 0
    response: Any = None


@dataclass
class _Failure:
    status: int
    error: dict[str, Any] | None  # None: non-JSON body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeGraph:
    """Page tokens map to Page ids; optionally restrict which PSIDs / comment ids exist."""

    def __init__(
        self,
        tokens: dict[str, str],
        *,
        psids: set[str] | None = None,
        comments: set[str] | None = None,
    ) -> None:
        self.tokens = dict(tokens)  # token -> page id
        self.app_secret: str | None = None  # set: an `appsecret_proof` must be HMAC-SHA256(it, token)
        self.expired: set[str] = set()
        self.psids = psids  # None: any PSID is a known user
        self.comments = comments  # None: any comment id exists
        self.window_closed: set[str] = set()  # PSIDs outside the 24 h window
        self.unavailable: set[str] = set()  # PSIDs that blocked the Page (551)
        self.calls: list[GraphCall] = []
        self._failures: deque[_Failure] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- control ---------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, kind: str = "server", *, retry_minutes: int = 2, delay: float = 0.0) -> None:
        """Make the next `n` calls fail: ``server`` (500, code 2, is_transient), ``bad_gateway`` (502 HTML),
        ``rate_limit`` (613 + X-Business-Use-Case-Usage), ``app_rate_limit`` (4 + X-App-Usage),
        ``temporary`` (1200), ``token`` (190/463), ``timeout`` (answer only after `delay` seconds)."""
        for _ in range(n):
            self._failures.append(self._failure(kind, retry_minutes, delay))

    def _failure(self, kind: str, retry_minutes: int, delay: float) -> _Failure:
        if kind == "server":
            return _Failure(500, _err("An unexpected error has occurred. Please retry your request later.", 2,
                                      is_transient=True))
        if kind == "bad_gateway":
            return _Failure(502, None)
        if kind == "rate_limit":
            usage = {"0": [{"type": "pages", "call_count": 100, "total_cputime": 20, "total_time": 20,
                            "estimated_time_to_regain_access": retry_minutes}]}
            return _Failure(400, _err("(#613) Calls to this API have exceeded the rate limit.", 613),
                            {"X-Business-Use-Case-Usage": json.dumps(usage)})
        if kind == "app_rate_limit":
            return _Failure(400, _err("(#4) Application request limit reached", 4),
                            {"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 30, "total_time": 40})})
        if kind == "temporary":
            return _Failure(400, _err("Temporary send message failure. Please try again later.", 1200))
        if kind == "token":
            return _Failure(400, _err("Error validating access token: Session has expired.", 190, 463))
        if kind == "timeout":
            return _Failure(500, _err("timeout", 2, is_transient=True), delay=delay or 5.0)
        raise ValueError(kind)

    def sends(self) -> list[GraphCall]:
        return [c for c in self.calls if c.path.endswith("/messages") and c.status == 200]

    def comment_replies(self) -> list[GraphCall]:
        return [c for c in self.calls if c.path.endswith("/comments") and c.status == 200]

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGraph:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- request handling ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        version = parts[0] if parts and VERSION_RE.match(parts[0]) else None
        body = await _decode_body(request)
        token = _token(request, body)
        call = GraphCall(request.method, request.path, version, dict(request.query), dict(request.headers), body, token)
        self.calls.append(call)
        resp = await self._respond(request, call, parts[1:] if version else parts)
        call.status = resp.status
        call.response = json.loads(resp.text) if resp.text and resp.content_type == "application/json" else resp.text
        return resp

    async def _respond(self, request: web.Request, call: GraphCall, parts: list[str]) -> web.Response:
        if self._failures:
            f = self._failures.popleft()
            if f.delay:
                await asyncio.sleep(f.delay)
            if f.error is None:
                return web.Response(status=f.status, text="<html><body>Bad Gateway</body></html>",
                                    content_type="text/html")
            return _error_response(f.status, f.error, f.headers)
        if call.token is None:
            return _error_response(400, _err("An active access token must be used to query information about "
                                             "the current user.", 2500))
        if call.token in self.expired:
            return _error_response(400, _err("Error validating access token: Session has expired.", 190, 463))
        page_id = self.tokens.get(call.token)
        if page_id is None:
            return _error_response(400, _err("Invalid OAuth access token - Cannot parse access token", 190))
        proof = call.query.get("appsecret_proof")
        if proof is not None and self.app_secret is not None and not hmac.compare_digest(
                proof, hmac.new(self.app_secret.encode(), call.token.encode(), hashlib.sha256).hexdigest()):
            return _error_response(400, _err("Invalid appsecret_proof provided in the API argument", 100,
                                             type_="GraphMethodException"))
        if request.method == "GET" and parts == ["me"]:  # the Page the token is for
            return web.json_response({"id": page_id, "name": f"Page {page_id}"})
        if request.method == "POST" and len(parts) == 2 and parts[1] == "messages" and parts[0] in ("me", page_id):
            return self._send_api(call, page_id)
        if request.method == "POST" and len(parts) == 2 and parts[1] == "comments":
            return self._comment_reply(call, parts[0])
        obj = parts[0] if parts else ""
        return _error_response(400, _err(
            f"Unsupported {request.method.lower()} request. Object with ID '{obj}' does not exist, cannot be loaded "
            "due to missing permissions, or does not support this operation. Please read the Graph API "
            "documentation at https://developers.facebook.com/docs/graph-api", 100, 33, type_="GraphMethodException"))

    def _send_api(self, call: GraphCall, page_id: str) -> web.Response:
        body = call.body if isinstance(call.body, dict) else {}
        recipient = body.get("recipient")
        if not isinstance(recipient, dict) or not recipient:
            return _error_response(400, _err("(#100) The parameter recipient is required", 100))
        psid = recipient.get("id")
        if not isinstance(psid, str) or (self.psids is not None and psid not in self.psids):
            return _error_response(400, _err("(#100) No matching user found", 100, 2018001))
        mtype = body.get("messaging_type")
        if mtype not in MESSAGING_TYPES:
            return _error_response(400, _err(
                f"(#100) param messaging_type must be one of {{{', '.join(MESSAGING_TYPES)}}} - got \"{mtype}\"", 100))
        if mtype == "MESSAGE_TAG" and not body.get("tag"):
            return _error_response(400, _err("(#100) Tag is required for MESSAGE_TAG messaging type.", 100))
        message = body.get("message")
        if not isinstance(message, dict) or not message:
            return _error_response(400, _err("(#100) Must send either message or state", 100))
        text, attachment = message.get("text"), message.get("attachment")
        if (text is None) == (attachment is None):
            return _error_response(400, _err("(#100) Exactly one of message[text] or message[attachment] must "
                                             "be specified", 100))
        if text is not None and (not isinstance(text, str) or not text or len(text) >= 2000):
            return _error_response(400, _err(
                "(#100) Length of param message[text] must be less than or equal to 2000", 100))
        if attachment is not None and (
            not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES
            or not isinstance(attachment.get("payload"), dict)
        ):
            return _error_response(400, _err("(#100) Invalid attachment", 100))
        if psid in self.unavailable:
            return _error_response(400, _err("(#551) This person isn't available right now.", 551, 1545041))
        if psid in self.window_closed and mtype != "MESSAGE_TAG":
            return _error_response(400, _err(
                "(#10) This message is sent outside of allowed window. Learn more about the new policy here: "
                "https://developers.facebook.com/docs/messenger-platform/policy-overview", 10, 2018278))
        mid = f"m_{page_id}_{next(self._ids)}_{secrets.token_hex(6)}"
        return web.json_response({"recipient_id": psid, "message_id": mid})

    def _comment_reply(self, call: GraphCall, comment_id: str) -> web.Response:
        if self.comments is not None and comment_id not in self.comments:
            return _error_response(400, _err(
                f"Unsupported post request. Object with ID '{comment_id}' does not exist, cannot be loaded due to "
                "missing permissions, or does not support this operation. Please read the Graph API documentation "
                "at https://developers.facebook.com/docs/graph-api", 100, 33, type_="GraphMethodException"))
        body = call.body if isinstance(call.body, dict) else {}
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            return _error_response(400, _err("(#100) Missing message or attachment", 100))
        post_object = comment_id.split("_", 1)[0]
        new_id = f"{post_object}_{10**15 + next(self._ids)}"
        if self.comments is not None:
            self.comments.add(new_id)
        return web.json_response({"id": new_id})


def _err(message: str, code: int, subcode: int | None = None, *, type_: str = "OAuthException",
         is_transient: bool | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        e["error_subcode"] = subcode
    if is_transient is not None:
        e["is_transient"] = is_transient
    e["fbtrace_id"] = "A" + secrets.token_urlsafe(15)
    return e


def _error_response(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error}, status=status, headers=headers)


async def _decode_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    if request.content_type == "application/json":
        try:
            return json.loads(raw)
        except ValueError:
            return None
    if request.content_type == "application/x-www-form-urlencoded":
        form = dict((await request.post()).items())
        out: dict[str, Any] = {}
        for k, v in form.items():  # Graph accepts JSON-encoded object params in forms
            try:
                out[k] = json.loads(str(v)) if str(v)[:1] in "{[" else str(v)
            except ValueError:
                out[k] = str(v)
        return out
    return None


def _token(request: web.Request, body: Any) -> str | None:
    if tok := request.query.get("access_token"):
        return tok
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    if isinstance(body, dict) and isinstance(body.get("access_token"), str):
        return str(body["access_token"])
    return None
