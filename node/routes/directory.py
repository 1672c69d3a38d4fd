"""Federation side of the member directory: ``POST /_pf/v1/members/attestation``.

Another node asks for one of our members' attestations with a signed ``member.lookup``
envelope (its member's client wants to invite ours). Only approved peers get an answer,
so an org chart cannot be scraped by strangers; the envelope is checked like any other
(``accept_envelope``: approval, addressing, skew, replay, signature).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol.codec import encode
from protocol.descriptor import load_map
from protocol.envelope import Envelope, PeerView, accept_envelope
from protocol.errors import RemoteProtocolError
from protocol.identity import node_of, parse_member_id

from ..bodies import read_body
from ..context import CTX, STORAGE
from ..directory import LOOKUP_KIND, LOOKUP_PATH, local_attestation, pinned_keyset
from ..errors import MSGPACK
from ..logs import peer_var
from ..middleware import enforce_rate

routes = web.RouteTableDef()
REPLAY_KEEP_MS = 20 * 60 * 1000  # longer than twice the skew window


@routes.post(LOOKUP_PATH)
async def lookup(request: web.Request) -> web.Response:
    ctx, storage = request.app[CTX], request.app[STORAGE]
    data = await read_body(request, MSGPACK)
    sender = Envelope.from_wire(load_map(data)).sender  # to know whose keys to check with
    peer = await storage.get_peer(sender)
    peers: dict[str, PeerView] = {}
    if peer is not None and peer.pinned_keys:
        keys = pinned_keyset([(k.kid, k.key, k.expired_ms) for k in peer.pinned_keys])
        peers[sender] = PeerView(peer.status, keys)
    now = ctx.clock()
    env = accept_envelope(data, me=ctx.identity.name, now_ms=now, peers=peers, seen=lambda _: False)
    peer_var.set(env.sender)
    enforce_rate(request, "peer", env.sender)
    if env.kind != LOOKUP_KIND:
        raise RemoteProtocolError("envelope.unknown_kind", f"expected {LOOKUP_KIND}")
    if not await storage.remember_envelope(env.id, env.sender, now + REPLAY_KEEP_MS):
        raise RemoteProtocolError("envelope.replay", env.id.hex())
    member = _member(env.body)
    if node_of(member) != ctx.identity.name:
        raise RemoteProtocolError("api.not_found", f"{member} is not a member of this node")
    attestation = await local_attestation(storage, member)
    return web.Response(body=encode({"member": member, "attestation": attestation}),
                        content_type=MSGPACK)  # fmt: skip


def _member(body: dict[str, Any]) -> str:
    member = body.get("member")
    if set(body) != {"member"} or not isinstance(member, str):
        raise RemoteProtocolError("schema.bad_value", "member.lookup body is {member}")
    parse_member_id(member)
    return member
