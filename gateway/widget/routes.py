"""HTTP routes of the widget feature: public widget settings, the visitor's contact
details, uploads, the built widget assets, the agent console and the demo page.

The widget runs on customers' sites, so these routes answer CORS preflights and put
CORS headers on every response, errors included."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from gateway.admin.demo import load_demo
from gateway.blobs import BlobNotFound
from gateway.chat.principals import Principal, VisitorPrincipal, require_admin
from gateway.core.domain import TenantStatus
from gateway.core.errors import Code, GatewayError, bad_request, not_found
from gateway.core.validation import opt_str
from gateway.http.api import Api
from gateway.http.middleware import error_response
from gateway.http.static import static_response
from gateway.security.auth import VisitorClaims
from gateway.store import NotFound, Store
from gateway.widget import settings as ws
from gateway.widget.pages import demo_page, favicon_png
from gateway.widget.store import WidgetSettingsRepository
from gateway.widget.uploads import INLINE_TYPES, Uploads

# a bundle whose name carries a hash of its content (widget/build.mjs): never changes
HASHED_ASSET = re.compile(r"(widget|console)\.[0-9a-f]{10}\.js")
ASSET_CACHE = "public, max-age=300"  # the loader: a new build reaches browsers within 5 minutes
HASHED_CACHE = "public, max-age=31536000, immutable"
VerifyToken = Callable[[str, str, float], VisitorClaims | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_HEADERS = "Authorization, Content-Type, X-Widget-Key, X-Visitor-Token"


class WidgetRoutes:
    def __init__(self, *, api: Api, store: Store, widget_store: WidgetSettingsRepository, uploads: Uploads,
                 verify_token: VerifyToken, cors_origins: tuple[str, ...], dist: Path, data_dir: Path,
                 clock: Callable[[], float], max_text_chars: int = 4000) -> None:
        """`max_text_chars`: the longest message text (MAX_TEXT_CHARS), told to the widget so
        that its composer stops there."""
        self.api = api
        self.store = store
        self.widget_store = widget_store
        self.uploads = uploads
        self.verify_token = verify_token
        self.cors_origins = cors_origins
        self.dist = dist
        self.data_dir = data_dir
        self.clock = clock
        self.max_text_chars = max_text_chars
        self._favicon = favicon_png()

    # --- plumbing --------------------------------------------------------
    def _cors(self, request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin and ("*" in self.cors_origins or origin in self.cors_origins):
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
            resp.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
            resp.headers["Access-Control-Max-Age"] = "600"
        return resp

    def cors(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                resp = await handler(request)
            except GatewayError as exc:
                resp = error_response(exc)
            return self._cors(request, resp)

        return wrapped

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        return self._cors(request, web.Response(status=204))

    async def _tenant_by_key(self, key: str) -> str:
        try:
            tenant = await self.store.get_tenant_by_widget_key(key)
        except NotFound:
            raise GatewayError(Code.NOT_FOUND, "unknown widget key") from None
        if tenant.status != TenantStatus.ACTIVE:
            raise GatewayError(Code.FORBIDDEN, "this account is not active")
        return tenant.id

    async def visitor(self, request: web.Request, key: str | None = None) -> VisitorPrincipal:
        key = key or request.headers.get("X-Widget-Key", "")
        token = request.headers.get("X-Visitor-Token", "")
        if not key or not token or len(key) > 200 or len(token) > 1024:
            raise GatewayError(Code.UNAUTHORIZED, "send X-Widget-Key and X-Visitor-Token")
        try:
            tenant_id = await self._tenant_by_key(key)
        except GatewayError:
            raise GatewayError(Code.UNAUTHORIZED, "unknown widget key") from None
        claims = self.verify_token(token, tenant_id, self.clock())
        if claims is None:
            raise GatewayError(Code.UNAUTHORIZED, "invalid visitor token")
        return VisitorPrincipal(tenant_id, claims.visitor_id, claims.contact_id)

    async def principal(self, request: web.Request) -> Principal:
        if request.headers.get("Authorization"):
            return await self.api.principal(request)
        return await self.visitor(request)

    # --- widget settings -------------------------------------------------
    async def public_settings(self, request: web.Request) -> web.StreamResponse:
        tenant_id = await self._tenant_by_key(request.match_info["key"])
        settings = ws.merged(await self.widget_store.get_settings(tenant_id))
        resp = web.json_response({"ok": True, "settings": settings, "max_upload_bytes": self.uploads.max_bytes,
                                  "max_text_chars": self.max_text_chars})
        resp.headers["Cache-Control"] = "public, max-age=60"
        return resp

    async def get_settings(self, request: web.Request) -> web.StreamResponse:
        p = await self.api.principal(request)
        return web.json_response({"ok": True, "settings": ws.merged(await self.widget_store.get_settings(p.tenant_id))})

    async def put_settings(self, request: web.Request) -> web.StreamResponse:
        p = require_admin(await self.api.principal(request), "change the widget settings")
        update = ws.validate(await self.api.body(request))
        current = await self.widget_store.get_settings(p.tenant_id) or {}
        pre = {**current.get("prechat", {}), **update.pop("prechat", {})}
        new = {**current, **update, "prechat": pre}
        await self.widget_store.put_settings(p.tenant_id, new, now=self.clock())
        return web.json_response({"ok": True, "settings": ws.merged(new)})

    async def visitor_contact(self, request: web.Request) -> web.StreamResponse:
        """The visitor leaves a name / email (e.g. in the offline state); only empty
        fields of the contact are filled, as in the handshake."""
        p = await self.visitor(request, request.match_info["key"])
        body = await self.api.body(request)
        if set(body) - {"name", "email"}:
            raise bad_request("only 'name' and 'email' may be given")
        name, email = opt_str(body, "name", max_len=200), opt_str(body, "email", max_len=320)
        if email is not None and "@" not in email:
            raise bad_request("'email' must be an email address", field="email")
        contact = await self.store.get_contact(p.tenant_id, p.contact_id)
        fields = {k: v for k, v, old in (("name", name, contact.name), ("email", email, contact.email))
                  if v and not old}
        if fields:
            await self.store.update_contact(p.tenant_id, p.contact_id, fields)
        return web.json_response({"ok": True, "updated": sorted(fields)})

    # --- uploads ---------------------------------------------------------
    async def upload(self, request: web.Request) -> web.StreamResponse:
        p = await self.principal(request)

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in request.content.iter_chunked(64 * 1024):
                yield chunk

        u = await self.uploads.save(p, request.query.get("name"), request.headers.get("Content-Type"),
                                    request.content_length, chunks())
        return web.json_response({"ok": True, "upload": self.uploads.view(u)}, status=201)

    async def upload_link(self, request: web.Request) -> web.StreamResponse:
        p = await self.principal(request)
        u = await self.uploads.readable(p, request.match_info["id"])
        url, exp = self.uploads.signed_url(u)
        return web.json_response({"ok": True, "url": url, "expires_at": exp})

    async def download(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        upload_id = request.match_info["id"]
        if "sig" in q:
            u = await self.uploads.by_signature(upload_id, q.get("t", ""), q.get("exp", ""), q["sig"])
        else:
            u = await self.uploads.readable(await self.principal(request), upload_id)
        inline = u.mime_type in INLINE_TYPES
        chunks = aiter(self.uploads.blobs.stream(self.uploads.key(u)))
        try:  # the first piece before the answer starts: a missing file is a 404, a store down a 503
            first = await anext(chunks, b"")
        except BlobNotFound:
            raise not_found("upload") from None
        resp = web.StreamResponse(headers={
            "Content-Type": u.mime_type if inline else "application/octet-stream",
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(u.name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
        })
        resp.content_length = u.size
        await resp.prepare(request)
        chunk = first
        while chunk:
            await resp.write(chunk)
            chunk = await anext(chunks, b"")
        await resp.write_eof()
        return resp

    # --- pages and assets --------------------------------------------------
    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (self.dist / name).resolve()
        if name.endswith((".br", ".gz")) or self.dist.resolve() not in path.parents or not path.is_file():
            raise web.HTTPNotFound(text="not built: run scripts/run.sh or `npm run build` in widget/")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        cache = HASHED_CACHE if HASHED_ASSET.fullmatch(name) else ASSET_CACHE
        resp = await static_response(request, path, ctype, cache)
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp

    async def favicon(self, request: web.Request) -> web.Response:
        return web.Response(body=self._favicon, content_type="image/png",
                            headers={"Cache-Control": "public, max-age=86400"})

    async def console(self, request: web.Request) -> web.StreamResponse:
        path = self.dist / "console.html"
        if not path.is_file():
            raise web.HTTPNotFound(text="not built: run scripts/run.sh or `npm run build` in widget/")
        return await static_response(request, path, "text/html; charset=utf-8", "no-cache")

    async def demo(self, request: web.Request) -> web.StreamResponse:
        info = load_demo(self.data_dir)
        if info is None:
            raise web.HTTPNotFound(text="the demo page exists in demo mode only (python -m gateway serve --demo)")
        base = f"{request.scheme}://{request.host}"
        return web.Response(text=demo_page(base, info["widget_key"], info["agent_token"]),
                            content_type="text/html", charset="utf-8")

    def routes(self) -> list[web.RouteDef]:
        c = self.cors
        pub = "/api/v1/public/widget/{key}"
        out = [
            web.get(f"{pub}/settings", c(self.public_settings)),
            web.post(f"{pub}/contact", c(self.visitor_contact)),
            web.get("/api/v1/widget/settings", self.get_settings),
            web.put("/api/v1/widget/settings", self.put_settings),
            web.post("/api/v1/uploads", c(self.upload)),
            web.get("/api/v1/uploads/{id}", c(self.download)),
            web.get("/api/v1/uploads/{id}/link", c(self.upload_link)),
            web.get("/widget/{name:[A-Za-z0-9_.-]+}", self.asset),
            web.get("/console", self.console),
            web.get("/favicon.ico", self.favicon),
            web.get("/demo", self.demo),
        ]
        for path in (f"{pub}/settings", f"{pub}/contact", "/api/v1/uploads", "/api/v1/uploads/{id}",
                     "/api/v1/uploads/{id}/link"):
            out.append(web.options(path, self.preflight))
        return out

