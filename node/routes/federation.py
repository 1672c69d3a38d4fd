"""Federation API (``/_pf/v1/…``, canonical msgpack) and the operator's outbox view
(``/admin/outbox``, JSON, behind the admin guard). Specs: specs/api.md §Federation API.

Handlers are thin: read a bounded body, hand it to node/federation, encode the answer.
Refusals are protocol errors, which the error middleware answers as msgpack with the
code's status.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from protocol.codec import encode
from protocol.errors import RemoteProtocolError

from ..bodies import json_field, read_body, read_json
from ..context import CTX, FEDERATION, STORAGE
from ..errors import MSGPACK
from ..federation.inbox import answer_backfill, receive_batch
from ..federation.peers import ROTATIONS_PATH
from ..identity import FEDERATION_PREFIX
from ..middleware import enforce_rate

routes = web.RouteTableDef()


def _msgpack(obj: Any) -> web.Response:
    return web.Response(body=encode(obj), content_type=MSGPACK)


def _charger(request: web.Request) -> Any:
    def charge(peer: str) -> None:
        enforce_rate(request, "peer", peer)

    return charge


@routes.post(FEDERATION_PREFIX + "/inbox")
async def inbox(request: web.Request) -> web.Response:
    data = await read_body(request, MSGPACK)  # size checked before reading (bodies.py)
    answer = await receive_batch(request.app[FEDERATION], data, _charger(request))
    if answer["acks"]:
        # Members' long-polls woken by these entries answer first: a reader waits for
        # them, the hub only for its ack. (One turn of the event loop.)
        await asyncio.sleep(0)
    return _msgpack(answer)


@routes.post(FEDERATION_PREFIX + "/forums/{forum}/backfill")
async def backfill(request: web.Request) -> web.Response:
    data = await read_body(request, MSGPACK)
    forum = request.match_info["forum"]
    answer = await answer_backfill(request.app[FEDERATION], data, forum, _charger(request))
    return _msgpack(answer)


@routes.get(ROTATIONS_PATH)
async def rotations(request: web.Request) -> web.Response:
    """Our rotation statements, oldest first: a peer that missed a node.rotation envelope
    (it was offline, or we rotated while stopped) verifies the chain from its pinned key.
    Only statements naming a key we actually hold or held are published: a statement
    left by a crash mid-rotation names a key we never used (node/identity.py)."""
    keys = request.app[CTX].identity.keys
    ours = {keys.kid, *(r.kid for r in keys.retired)}
    statements = [
        r.statement
        for r in await request.app[STORAGE].list_rotations()
        if r.new_kid in ours and r.old_kid in ours
    ]
    return _msgpack({"rotations": statements})


# ---------------------------------------------------------------------------- admin


@routes.get("/admin/outbox")
async def outbox(request: web.Request) -> web.Response:
    storage = request.app[STORAGE]
    peer = request.query.get("peer") or None
    summary = [
        {
            "peer": s.peer,
            "queued": s.queued,
            "dead": s.dead,
            "breaker": s.delivery.breaker,
            "failures": s.delivery.failures,
            "backoff_ms": s.delivery.backoff_ms,
            "next_attempt_ms": s.delivery.next_attempt_ms,
            "last_error": s.delivery.last_error,
        }
        for s in await storage.outbox_summary()
        if peer is None or s.peer == peer
    ]
    dead = [
        {
            "id": row.id,
            "peer": row.destination,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "created_ms": row.created_ms,
        }
        for row in await storage.dead_letters(peer)
    ]
    return web.json_response({"peers": summary, "dead": dead})


@routes.post("/admin/outbox/retry")
async def retry(request: web.Request) -> web.Response:
    body = await read_json(request)
    peer = json_field(body, "peer", str, required=False)
    if peer is not None and await request.app[STORAGE].get_peer(peer) is None:
        raise RemoteProtocolError("api.not_found", f"no peer named {peer!r}")
    requeued = await request.app[FEDERATION].retry(peer)
    return web.json_response({"requeued": requeued, "peer": peer})
