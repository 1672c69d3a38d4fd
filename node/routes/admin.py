"""Local admin API for the operator CLI (JSON, under ``/admin/``).

Two locks: the connection must come from loopback, and carry ``Authorization: Bearer``
with the token in ``admin.token``. Loopback alone is not enough (any local user, or a
reverse proxy on the same host, connects from loopback), so requests bearing proxy
headers are refused too.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from aiohttp import web

from protocol.errors import RemoteProtocolError
from protocol.keys import fingerprint

from ..bodies import json_field, read_json
from ..context import CTX, FEDERATION, FORUMS, HTTP, STORAGE
from ..forums.report import evidence_view, forum_view, frozen_views
from ..identity import rotate_node_key
from ..peering import (
    approve_peer,
    block_peer,
    fetch_descriptor,
    forums_needing,
    offer_peer,
    parse_peer_url,
    peer_view,
    remove_peer,
)

ADMIN_PREFIX = "/admin/"
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

routes = web.RouteTableDef()


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def check_admin(request: web.BaseRequest, token: str) -> None:
    """Raise unless the request may use the admin API."""
    if not _is_loopback(request.remote) or any(h in request.headers for h in _PROXY_HEADERS):
        raise RemoteProtocolError("api.forbidden", "the admin API answers only on loopback")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise RemoteProtocolError(
            "api.unauthorized", "admin API needs 'Authorization: Bearer <admin.token>'"
        )


@web.middleware
async def admin_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith(ADMIN_PREFIX) or request.path == ADMIN_PREFIX.rstrip("/"):
        check_admin(request, request.app[CTX].admin_token)
    response: web.StreamResponse = await handler(request)
    return response


@routes.get("/admin/status")
async def status(request: web.Request) -> web.Response:
    ctx, storage = request.app[CTX], request.app[STORAGE]
    peers = await storage.count_peers()
    return web.json_response(
        {
            "name": ctx.identity.name,
            "fingerprint": ctx.identity.fingerprint,
            "kid": ctx.identity.keys.kid,
            "listen": ctx.config.listen,
            "url": ctx.config.base_url,
            "running": True,
            "peers": peers,
            "forums": await storage.count_forums(),
            "outbox_depth": await storage.outbox_depth(),
            "schema": await storage.schema_version(),
            "frozen": await frozen_views(storage),
        }
    )


@routes.get("/admin/forums")
async def forums(request: web.Request) -> web.Response:
    """Every forum this node holds: hub, head, frozen (with its proof), gaps."""
    engine = request.app.get(FORUMS)
    gaps = getattr(engine, "gaps", None)
    views = [
        forum_view(rec, gaps(rec.id) if callable(gaps) else None)
        for rec in await request.app[STORAGE].list_forum_records()
    ]
    return web.json_response({"forums": views})


@routes.get("/admin/evidence")
async def evidence(request: web.Request) -> web.Response:
    """Objects refused as breaking a rule (entries, heads, cosignatures, proofs), newest
    first: what an operator shows the other operators when a hub misbehaves."""
    forum = request.query.get("forum") or None
    try:
        limit = max(1, min(int(request.query.get("limit", "100")), 1000))
    except ValueError as exc:
        raise RemoteProtocolError("api.bad_request", "limit must be an integer") from exc
    found = await request.app[STORAGE].list_evidence(forum, limit)
    return web.json_response({"evidence": [evidence_view(r) for r in found]})


@routes.get("/admin/peers")
async def list_peers(request: web.Request) -> web.Response:
    peers = await request.app[STORAGE].list_peers()
    return web.json_response({"peers": [peer_view(p) for p in peers]})


@routes.post("/admin/peers")
async def add_peer(request: web.Request) -> web.Response:
    """Fetch and verify a descriptor; the peer stays pending until approved."""
    ctx, storage = request.app[CTX], request.app[STORAGE]
    body = await read_json(request)
    address = parse_peer_url(json_field(body, "url", str))
    if address.name == ctx.identity.name:
        raise RemoteProtocolError("api.conflict", "that URL is this node itself")
    now = ctx.clock()
    desc, data = await fetch_descriptor(request.app[HTTP], address, now)
    peer = await offer_peer(storage, address, desc, data, now)
    return web.json_response({"peer": peer_view(peer)})


@routes.post("/admin/peers/{name}/approve")
async def approve(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await read_json(request)
    expected = json_field(body, "fingerprint", str, required=False)
    peer = await approve_peer(
        request.app[STORAGE], request.match_info["name"], ctx.clock(), expected
    )
    if FEDERATION in request.app:  # what waited for this peer goes out now
        await request.app[FEDERATION].peer_trusted(peer.name)
    return web.json_response({"peer": peer_view(peer)})


@routes.post("/admin/peers/{name}/block")
async def block(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    peer = await block_peer(request.app[STORAGE], request.match_info["name"], ctx.clock())
    return web.json_response({"peer": peer_view(peer)})


@routes.post("/admin/peers/{name}/remove")
async def remove(request: web.Request) -> web.Response:
    """Forget a peer. Refused while a forum here needs it (its hub, or a member or invitee
    homed there) unless ``force``: those forums would silently stop replicating."""
    storage, name = request.app[STORAGE], request.match_info["name"]
    body = await read_json(request)
    force = json_field(body, "force", bool, required=False) or False
    peer = await storage.get_peer(name)
    if peer is None:
        raise RemoteProtocolError("api.not_found", f"no peer named {name!r}")
    needing = await forums_needing(storage, request.app.get(FORUMS), name)
    if needing and not force:
        raise RemoteProtocolError(
            "api.conflict",
            f"{name} takes part in {len(needing)} forum(s) here ({', '.join(needing[:3])}): "
            f"`peer block {name}` stops its traffic and can be undone; --force removes anyway",
        )
    dropped = await remove_peer(storage, name)
    return web.json_response(
        {"peer": peer_view(peer), "removed": True, "forums": needing, "dropped": dropped}
    )


@routes.post("/admin/key/rotate")
async def rotate(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    statement = await rotate_node_key(
        ctx.data, request.app[STORAGE], ctx.identity, ctx.rng, ctx.clock()
    )
    if FEDERATION in request.app:  # tell approved peers, signed by the old key (§4.4)
        await request.app[FEDERATION].announce_rotation(statement)
    return web.json_response(
        {
            "kid": statement.new_key.key_id,
            "fingerprint": fingerprint(statement.new_key.raw),
            "old_kid": statement.old_key.key_id,
            "ts": statement.ts,
        }
    )
