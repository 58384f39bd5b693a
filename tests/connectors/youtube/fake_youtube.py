"""A local fake of the YouTube Data API v3 (comment threads, replies) and Google's token endpoint.

Speaks the wire format of /work/shared/channels/youtube.md: ``youtube#commentThreadListResponse``
envelopes (kind, etag, nextPageToken, pageInfo, items[].snippet.topLevelComment.snippet…),
newest-first paging with opaque page tokens, ``Authorization: Bearer`` checking (401 with
``authError``), Google JSON errors, and errors injected on demand (quota, rate, 5xx, …).
Inserted replies are recorded in `inserts`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

OWNER_CHANNEL = "UCownerChannel0000000001"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(obj: Any) -> str:
    return base64.urlsafe_b64encode(hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).digest()[:20]).decode()[:27]


def google_error(
    status: int, reason: str, message: str | None = None, domain: str = "youtube.commentThread"
) -> web.Response:
    msg = message or f"{reason} (fake)"
    item = {"message": msg, "domain": domain, "reason": reason}
    err: dict[str, Any] = {"code": status, "message": msg, "errors": [item]}
    if status == 401:
        err["status"] = "UNAUTHENTICATED"
        err["errors"][0].update(location="Authorization", locationType="header")
    return web.json_response({"error": err}, status=status)


@dataclass
class FakeComment:
    id: str
    thread_id: str
    parent_id: str | None
    video_id: str
    channel_id: str
    author_channel_id: str
    author_name: str
    text: str
    published: float

    def resource(self, text_format: str = "html") -> dict[str, Any]:
        display = self.text if text_format == "plainText" else html.escape(self.text).replace("\n", "<br>")
        sn: dict[str, Any] = {
            "channelId": self.channel_id,
            "videoId": self.video_id,
            "textDisplay": display,
            "textOriginal": self.text,
            "authorDisplayName": self.author_name,
            "authorProfileImageUrl": "https://yt3.ggpht.com/fake=s48-c-k-c0x00ffffff-no-rj",
            "authorChannelUrl": f"http://www.youtube.com/{self.author_name}",
            "authorChannelId": {"value": self.author_channel_id},
            "canRate": True,
            "viewerRating": "none",
            "likeCount": 0,
            "publishedAt": rfc3339(self.published),
            "updatedAt": rfc3339(self.published),
        }
        if self.parent_id:
            sn["parentId"] = self.parent_id
        res = {"kind": "youtube#comment", "id": self.id, "snippet": sn}
        return {"kind": "youtube#comment", "etag": etag(res), "id": self.id, "snippet": sn}


@dataclass
class FakeThread:
    top: FakeComment
    replies: list[FakeComment] = field(default_factory=list)

    def resource(self, text_format: str, reply_cap: int, with_replies: bool) -> dict[str, Any]:
        res: dict[str, Any] = {
            "kind": "youtube#commentThread",
            "id": self.top.id,
            "snippet": {
                "channelId": self.top.channel_id,
                "videoId": self.top.video_id,
                "topLevelComment": self.top.resource(text_format),
                "canReply": True,
                "totalReplyCount": len(self.replies),
                "isPublic": True,
            },
        }
        if with_replies and self.replies:
            res["replies"] = {"comments": [r.resource(text_format) for r in self.replies[:reply_cap]]}
        res["etag"] = etag(res)
        return res


@dataclass
class Failure:
    path: str  # "commentThreads", "comments", "token"
    method: str | None
    status: int
    reason: str
    times: int
    headers: dict[str, str]


class FakeYouTube:
    def __init__(
        self,
        *,
        client_id: str = "fake-client.apps.googleusercontent.com",
        client_secret: str = "fake-secret",
        refresh_token: str = "1//fake-refresh",
        owner_channel_id: str = OWNER_CHANNEL,
        reply_cap: int = 5,
        token_lifetime: int = 3599,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.owner_channel_id = owner_channel_id
        self.reply_cap = reply_cap
        self.token_lifetime = token_lifetime
        self.threads: dict[str, FakeThread] = {}
        self.comments: dict[str, FakeComment] = {}
        self.video_channel: dict[str, str] = {}
        self.comments_disabled: set[str] = set()
        self.tokens: dict[str, float] = {}  # access token → expiry
        self.inserts: list[dict[str, Any]] = []  # request bodies of successful comments.insert
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self.token_requests: list[dict[str, str]] = []
        self.failures: list[Failure] = []
        self.revoked = False
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/youtube/v3/commentThreads", self._list_threads)
        app.router.add_get("/youtube/v3/comments", self._list_comments)
        app.router.add_post("/youtube/v3/comments", self._insert_comment)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"{self.url}/youtube/v3"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    # --- data -----------------------------------------------------------------
    def _new_id(self) -> str:
        return f"Ugx{next(self._ids):08d}FakeAaABAg"

    def add_video(self, video_id: str, channel_id: str | None = None) -> None:
        self.video_channel[video_id] = channel_id or self.owner_channel_id

    def add_thread(
        self,
        video_id: str,
        text: str,
        *,
        author: str = "UCviewerChannel000000001",
        name: str = "@viewer",
        published: float | None = None,
    ) -> str:
        channel = self.video_channel.setdefault(video_id, self.owner_channel_id)
        tid = self._new_id()
        top = FakeComment(tid, tid, None, video_id, channel, author, name, text, published or time.time())
        self.threads[tid] = FakeThread(top)
        self.comments[tid] = top
        return tid

    def add_reply(
        self,
        thread_id: str,
        text: str,
        *,
        author: str = "UCviewerChannel000000001",
        name: str = "@viewer",
        published: float | None = None,
    ) -> str:
        thread = self.threads[thread_id]
        rid = f"{thread_id}.{next(self._ids):08d}fakeReply"
        reply = FakeComment(
            rid, thread_id, thread_id, thread.top.video_id, thread.top.channel_id, author, name, text,
            published or time.time(),
        )
        thread.replies.append(reply)
        self.comments[rid] = reply
        return rid

    def fail(
        self,
        path: str,
        status: int,
        reason: str = "",
        *,
        times: int = 1,
        method: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests to `path` answer `status` / `reason` (a Google JSON error)."""
        self.failures.append(Failure(path, method, status, reason, times, headers or {}))

    def expire_tokens(self) -> None:
        """Every issued access token stops working (the API answers 401)."""
        self.tokens.clear()

    def calls(self, path: str, method: str = "GET") -> list[dict[str, str]]:
        return [q for m, p, q in self.requests if p == path and m == method]

    # --- helpers ----------------------------------------------------------------
    def _injected(self, path: str, method: str) -> web.Response | None:
        for f in self.failures:
            if f.path == path and f.method in (None, method) and f.times > 0:
                f.times -= 1
                if path == "token":
                    return web.json_response({"error": f.reason, "error_description": "fake"}, status=f.status)
                domain = "youtube.quota" if f.reason == "quotaExceeded" else "youtube.api"
                resp = google_error(f.status, f.reason, domain=domain)
                resp.headers.update(f.headers)
                return resp
        return None

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return google_error(401, "required", "Login Required.", domain="global")
        expiry = self.tokens.get(header[len("Bearer ") :])
        if expiry is None or expiry < time.time():
            return google_error(401, "authError", "Invalid Credentials", domain="global")
        return None

    def _prelude(self, request: web.Request, path: str) -> web.Response | None:
        self.requests.append((request.method, path, dict(request.query)))
        return self._injected(path, request.method) or self._auth(request)

    @staticmethod
    def _page_token(offset: int) -> str:
        return base64.b64encode(f"fake-offset:{offset}".encode()).decode()

    @staticmethod
    def _offset(token: str | None) -> int | None:
        if not token:
            return 0
        try:
            kind, _, n = base64.b64decode(token.encode(), validate=True).decode().partition(":")
            return int(n) if kind == "fake-offset" else None
        except ValueError:
            return None

    def _page(self, request: web.Request, kind: str, items: list[Any], max_default: int) -> web.Response:
        try:
            max_results = int(request.query.get("maxResults", str(max_default)))
        except ValueError:
            max_results = -1
        if not 1 <= max_results <= 100:
            return google_error(400, "invalidParameter", "maxResults out of range")
        offset = self._offset(request.query.get("pageToken"))
        if offset is None:
            return google_error(400, "invalidPageToken", "The request specifies an invalid page token.")
        page = items[offset : offset + max_results]
        info = {"totalResults": len(page), "resultsPerPage": max_results}
        body: dict[str, Any] = {"kind": kind, "etag": "", "pageInfo": info}
        if offset + max_results < len(items):
            body["nextPageToken"] = self._page_token(offset + max_results)
        body["items"] = page
        body["etag"] = etag(body)
        return web.json_response(body)

    # --- handlers -------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        injected = self._injected("token", "POST")
        if injected is not None:
            return injected
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description": "Unauthorized"}, status=401)
        if self.revoked or form.get("refresh_token") != self.refresh_token:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, status=400
            )
        token = f"ya29.fake-{next(self._ids)}"
        self.tokens[token] = time.time() + self.token_lifetime
        return web.json_response(
            {
                "access_token": token,
                "expires_in": self.token_lifetime,
                "scope": "https://www.googleapis.com/auth/youtube.force-ssl",
                "token_type": "Bearer",
            }
        )

    async def _list_threads(self, request: web.Request) -> web.Response:
        refused = self._prelude(request, "commentThreads")
        if refused is not None:
            return refused
        q = request.query
        parts = set(q.get("part", "").split(","))
        if not q.get("part") or not parts <= {"id", "snippet", "replies"}:
            return google_error(400, "invalidPart" if q.get("part") else "missingRequiredParameter")
        filters = [k for k in ("allThreadsRelatedToChannelId", "videoId", "id", "channelId") if k in q]
        if len(filters) != 1:
            return google_error(400, "invalidFilters" if filters else "missingRequiredParameter")
        text_format = q.get("textFormat", "html")
        with_replies = "replies" in parts
        if filters[0] == "channelId":
            return google_error(400, "invalidFilters", "channelId is no longer supported (fake)")
        if filters[0] == "id":
            if any(k in q for k in ("maxResults", "pageToken", "order")):
                return google_error(400, "incompatibleParameters")
            found = [self.threads[i] for i in q["id"].split(",") if i in self.threads]
            items = [t.resource(text_format, self.reply_cap, with_replies) for t in found]
            return self._page(request, "youtube#commentThreadListResponse", items, 20)
        if filters[0] == "videoId":
            video = q["videoId"]
            if video not in self.video_channel:
                return google_error(404, "videoNotFound")
            if video in self.comments_disabled:
                return google_error(403, "commentsDisabled", "The video has disabled comments (fake).")
            selected = [t for t in self.threads.values() if t.top.video_id == video]
        else:
            channel = q["allThreadsRelatedToChannelId"]
            if channel not in self.video_channel.values():
                return google_error(404, "channelNotFound")
            selected = [t for t in self.threads.values() if t.top.channel_id == channel]
        if q.get("order", "time") == "time":
            selected.sort(key=lambda t: (t.top.published, t.top.id), reverse=True)
        items = [t.resource(text_format, self.reply_cap, with_replies) for t in selected]
        return self._page(request, "youtube#commentThreadListResponse", items, 20)

    async def _list_comments(self, request: web.Request) -> web.Response:
        refused = self._prelude(request, "comments")
        if refused is not None:
            return refused
        q = request.query
        text_format = q.get("textFormat", "html")
        if "parentId" in q:
            thread = self.threads.get(q["parentId"])
            replies = thread.replies if thread else []
            items = [r.resource(text_format) for r in replies]
        elif "id" in q:
            items = [self.comments[i].resource(text_format) for i in q["id"].split(",") if i in self.comments]
        else:
            return google_error(400, "missingRequiredParameter")
        return self._page(request, "youtube#commentListResponse", items, 20)

    async def _insert_comment(self, request: web.Request) -> web.Response:
        refused = self._prelude(request, "comments")
        if refused is not None:
            return refused
        if request.query.get("part") != "snippet":
            return google_error(400, "missingRequiredParameter", domain="youtube.comment")
        try:
            body = await request.json()
        except ValueError:
            return google_error(400, "parseError", domain="global")
        sn = body.get("snippet") if isinstance(body, dict) else None
        if not isinstance(sn, dict) or not sn.get("parentId"):
            return google_error(400, "parentIdMissing", domain="youtube.comment")
        if not isinstance(sn.get("textOriginal"), str) or not sn["textOriginal"].strip():
            return google_error(400, "commentTextRequired", domain="youtube.comment")
        parent = self.comments.get(sn["parentId"])
        if parent is None or parent.parent_id is not None:
            return google_error(404, "parentCommentNotFound", domain="youtube.comment")
        if parent.video_id in self.comments_disabled:
            return google_error(403, "commentsDisabled", domain="youtube.comment")
        rid = self.add_reply(parent.id, sn["textOriginal"], author=self.owner_channel_id, name="@shopowner")
        self.inserts.append(body)
        return web.json_response(self.comments[rid].resource("html"))
