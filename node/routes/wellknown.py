"""``GET /.well-known/peerforum``: this node's signed descriptor (canonical msgpack)."""

from __future__ import annotations

from aiohttp import web

from ..context import CTX
from ..errors import MSGPACK

routes = web.RouteTableDef()


@routes.get("/.well-known/peerforum")
async def descriptor(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    _, data = ctx.identity.descriptor(ctx.clock())
    # Short caching: peers refetch to learn of rotations within minutes.
    return web.Response(body=data, content_type=MSGPACK, headers={"Cache-Control": "max-age=300"})
