"""Security headers on every HTTP response of the gateway (an `on_response_prepare` signal).

Every response: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and a
`Server` header that names no software version. Every HTML page (the agent console, the
demo shop, the call test page, and any page added later): a `Content-Security-Policy` that
allows scripts from the gateway's own origin only (no inline script, no eval), no plugins,
no `<base>`, and no framing (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older
browsers). Styles may be inline: the widget builds its shadow-root `<style>` at run time,
and the pages carry their own `<style>` blocks. A handler that sets its own
`Content-Security-Policy` (attachment downloads: `default-src 'none'; sandbox`) keeps it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

SERVER = "izihelp-gateway"


def page_policy(extra_origins: tuple[str, ...] = ()) -> str:
    """The CSP of the HTML pages; `extra_origins` (e.g. `PUBLIC_URL`'s origin, where signed
    upload links point) may serve images/media and be connected to."""
    extra = "".join(f" {o}" for o in extra_origins)
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src 'self'{extra}",
        f"media-src 'self' blob:{extra}",  # blob: the console plays recordings it fetched with the agent's token
        f"connect-src 'self'{extra}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def origin_of(url: str | None) -> tuple[str, ...]:
    """`scheme://host[:port]` of `url` (none for no URL or one without a host)."""
    if not url:
        return ()
    u = urlsplit(url)
    return (f"{u.scheme}://{u.netloc}",) if u.scheme in ("http", "https") and u.netloc else ()


def install_security_headers(app: web.Application, *, public_url: str | None = None) -> None:
    """Add the headers above to every response `app` prepares."""
    policy = page_policy(origin_of(public_url))

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["Server"] = SERVER
        headers["X-Content-Type-Options"] = "nosniff"
        headers.setdefault("Referrer-Policy", "no-referrer")
        if response.content_type == "text/html" and "Content-Security-Policy" not in headers:
            headers["Content-Security-Policy"] = policy
            headers["X-Frame-Options"] = "DENY"

    app.on_response_prepare.append(on_prepare)
