"""`GET /api/v1/openapi.yaml`: the REST API's OpenAPI document (docs/openapi.yaml)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def openapi_text() -> str | None:
    """docs/openapi.yaml of the source tree, or of the working directory (the container's /app)."""
    for path in (OPENAPI_PATH, Path.cwd() / "docs" / "openapi.yaml"):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def openapi_routes(spec: str | None) -> list[web.RouteDef]:
    """The document read at start (`openapi_text`); 404 when it is not installed."""

    async def openapi(_: web.Request) -> web.Response:
        if spec is None:
            raise web.HTTPNotFound(reason="docs/openapi.yaml is not installed")
        return web.Response(text=spec, content_type="application/yaml")

    return [web.get("/api/v1/openapi.yaml", openapi)]
