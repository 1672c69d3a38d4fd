"""Federation API (``/_pf/v1/…``, canonical msgpack) and the operator's outbox view
(``/admin/outbox``, JSON, behind the admin guard). Specs: specs/api.md §Federation API.

Handlers are thin: read a bounded body, hand it to node/federation, encode the answer.
Refusals are protocol errors, which the error middleware answers as msgpack with the
code's status.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from protocol.codec import DEFAULT_LIMITS, encode
from protocol.errors import RemoteProtocolError

from ..bodies import json_field, read_body, read_json
from ..context import CTX, FEDERATION, INBOX_SOCKETS, STORAGE
from ..errors import MSGPACK, refusal_of
from ..federation.inbox import answer_backfill, receive_batch
from ..federation.peers import ROTATIONS_PATH
from ..identity import FEDERATION_PREFIX
from ..middleware import enforce_rate

routes = web.RouteTableDef()

# A batch is at most 1 MiB (protocol §10); a little over still gets its envelope.too_large
# answer from the batch checks, anything larger closes the socket (1009).
MAX_SOCKET_MESSAGE: Final = DEFAULT_LIMITS.max_batch_bytes + 64 * 1024
SOCKET_PING_S: Final = 30.0


def _msgpack(obj: Any) -> web.Response:
    return web.Response(body=encode(obj), content_type=MSGPACK)


def _charger(request: web.Request) -> Any:
    def charge(peer: str) -> None:
        enforce_rate(request, "peer", peer)

    return charge


@routes.post(FEDERATION_PREFIX + "/inbox")
async def inbox(request: web.Request) -> web.Response:
    data = await read_body(request, MSGPACK)  # size checked before reading (bodies.py)
    fed = request.app[FEDERATION]
    fed.metrics.received.inc(transport="post")
    answer = await receive_batch(fed, data, _charger(request))
    if answer["acks"]:
        # Members' long-polls woken by these entries answer first: a reader waits for
        # them, the hub only for its ack. (One turn of the event loop.)
        await asyncio.sleep(0)
    return _msgpack(answer)


@routes.get(FEDERATION_PREFIX + "/inbox")
async def inbox_socket(request: web.Request) -> web.StreamResponse:
    """The inbox kept open as a WebSocket (specs/api.md): one batch in, one answer out."""
    ws = web.WebSocketResponse(max_msg_size=MAX_SOCKET_MESSAGE, heartbeat=SOCKET_PING_S,
                               compress=False)  # fmt: skip
    if not ws.can_prepare(request).ok:
        raise RemoteProtocolError(
            "api.bad_request", "GET the inbox as a WebSocket, or POST a batch to it"
        )
    await ws.prepare(request)
    sockets = request.app[INBOX_SOCKETS]
    sockets.add(ws)
    fed, charge = request.app[FEDERATION], _charger(request)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary batches only")
                break
            fed.metrics.received.inc(transport="socket")
            answer = await _socket_answer(request, fed, msg.data, charge)
            if isinstance(answer, dict) and answer.get("acks"):
                await asyncio.sleep(0)  # as in inbox(): members' long-polls answer first
            await ws.send_bytes(encode(answer))
    finally:
        sockets.discard(ws)
    return ws


async def _socket_answer(request: web.Request, fed: Any, data: bytes, charge: Any) -> Any:
    """What ``inbox`` would answer, as one message: the 200 body, or the error body
    (the error middleware's answer, with ``retry_after_ms`` for "not now")."""
    try:
        return await receive_batch(fed, data, charge)
    except Exception as exc:
        refusal = refusal_of(request, exc)
    request.app[CTX].metrics.errors.inc(code=refusal.code)
    body: dict[str, Any] = {"error": refusal.code, "message": refusal.message[:500]}
    if refusal.retry_after_s is not None:
        body["retry_after_ms"] = max(0, int(refusal.retry_after_s * 1000))
    return body


async def close_inbox_sockets(app: web.Application) -> None:
    """On shutdown, before connections are cut: each open inbox socket gets 1001 (its
    sender falls back or reconnects) instead of holding the stop for the grace period."""
    for ws in list(app[INBOX_SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node stopping")


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
