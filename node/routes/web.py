"""The members' web client: ``GET /`` (the app shell) and ``GET /static/...`` (node/web).

The node is trusted to serve this code but never to read content, so the page must run
only what the node ships and talk only to the node: a strict Content-Security-Policy
allows scripts, styles and connections from this origin alone, no inline script, no
eval, no plugins, no framing. Files are served from a fixed table of extensions with
their MIME types (ES modules must be ``text/javascript`` or the browser refuses them);
anything else, dotfiles and paths leaving ``node/web`` are ``api.not_found``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from aiohttp import web

from protocol.errors import RemoteProtocolError

WEB_ROOT: Final = Path(__file__).resolve().parent.parent / "web"

CSP: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # A client that loads stale modules could mis-handle keys: always revalidate.
    "Cache-Control": "no-cache",
}

MIME_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
}

routes = web.RouteTableDef()


def resolve_static(rel: str) -> Path:
    """The file under WEB_ROOT named by ``rel``, or ``api.not_found``."""
    parts = rel.split("/")
    if any(not p or p.startswith(".") for p in parts):
        raise RemoteProtocolError("api.not_found", "no such file")
    path = (WEB_ROOT / rel).resolve()
    if not path.is_relative_to(WEB_ROOT) or path.suffix not in MIME_TYPES or not path.is_file():
        raise RemoteProtocolError("api.not_found", "no such file")
    return path


async def file_response(path: Path) -> web.Response:
    body = await asyncio.to_thread(path.read_bytes)
    headers = {**SECURITY_HEADERS, "Content-Type": MIME_TYPES[path.suffix]}
    return web.Response(body=body, headers=headers)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return await file_response(WEB_ROOT / "index.html")


@routes.get("/static/{path:.+}")
async def static(request: web.Request) -> web.Response:
    return await file_response(resolve_static(request.match_info["path"]))
