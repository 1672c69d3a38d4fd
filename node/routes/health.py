"""Liveness and metrics for monitoring: ``GET /healthz``, ``GET /metrics``."""

from __future__ import annotations

from aiohttp import web

from protocol.errors import RemoteProtocolError

from ..context import CTX, STORAGE
from ..storage import StorageError

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        schema = await request.app[STORAGE].schema_version()
    except StorageError as exc:
        raise RemoteProtocolError("api.unavailable", "database unavailable") from exc
    return web.json_response(
        {"status": "ok", "name": ctx.identity.name, "kid": ctx.identity.keys.kid, "schema": schema}
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    text = await request.app[CTX].metrics.registry.render()
    return web.Response(
        body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )
