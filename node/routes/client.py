"""Client API for this node's members' devices: enrollment, sessions, devices, directory.

JSON under ``/_pf/client/v1/``; bytes travel as base64url without padding. A session is
opened by a signature of a registered device and its token is bound to that device, so
a stolen token is useless once the device is revoked. The forum routes are in
``client_forums.py``; they authenticate through ``session_of`` here.

What a member writes in a forum never passes here in the clear: the node sees signed
events with sealed bodies, and these handlers log nothing but the route template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web

from protocol.codec import decode
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.identity import check_node_name, member_id, parse_member_id
from protocol.keys import VerifyKey, b64u, key_id, sha256, unb64u

from ..bodies import json_field, read_json
from ..config import is_loopback_host
from ..context import CTX, HTTP, STORAGE
from ..directory import (
    CODE_TTL_MS,
    attest_member,
    device_message,
    device_of,
    enroll_message,
    handle_of_code,
    lookup_attestation,
    secret_hash,
    session_message,
)
from ..middleware import enforce_rate
from ..peering import PeerAddress, fetch_descriptor, parse_peer_url
from ..storage.members import MemberRecord

PREFIX: Final = "/_pf/client/v1"
SESSION_TTL_MS: Final = 7 * 24 * 3600 * 1000
SKEW_MS: Final = 5 * 60 * 1000  # as for envelopes (specs §10)
TOKEN_BYTES: Final = 32
NONCE_MIN, NONCE_MAX = 16, 64

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Session:
    member: str
    device: str  # key id of the device the token is bound to
    token_hash: bytes


def b64_field(body: dict[str, Any], name: str, size: int | None = None) -> bytes:
    """A base64url field of a JSON body (``api.bad_request`` if absent or malformed)."""
    text = json_field(body, name, str)
    try:
        value = unb64u(text)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", f"{name} is not base64url") from exc
    if size is not None and len(value) != size:
        raise RemoteProtocolError("api.bad_request", f"{name} must be {size} bytes")
    return value


async def session_of(request: web.Request) -> Session:
    """The caller's live session (``api.unauthorized``), rate limited per member."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RemoteProtocolError("api.unauthorized", "send 'Authorization: Bearer <token>'")
    token_hash = secret_hash(token.strip())
    ctx = request.app[CTX]
    found = await request.app[STORAGE].get_session(token_hash, ctx.clock())
    if found is None:
        raise RemoteProtocolError("api.unauthorized", "session expired or revoked: log in again")
    enforce_rate(request, "member", found.member)
    return Session(found.member, found.device, token_hash)


async def _active_member(request: web.Request, member: str) -> MemberRecord:
    record = await request.app[STORAGE].get_member(member)
    if record is None or record.status != "active":
        raise RemoteProtocolError("api.forbidden", f"{member} is not an active member here")
    return record


def _device_body(body: dict[str, Any]) -> tuple[bytes, bytes]:
    device = json_field(body, "device", dict)
    sign, agree = b64_field(device, "sign", 32), b64_field(device, "agree", 32)
    try:
        device_of(sign, agree)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", f"device: {exc.message}") from exc
    if sign == agree:
        raise RemoteProtocolError("api.bad_request", "device keys must differ")
    return sign, agree


# ---------------------------------------------------------------------------- enrollment


@routes.post(PREFIX + "/enroll")
async def enroll(request: web.Request) -> web.Response:
    """Spend a one-time code: register a device that proves it holds its signing key."""
    ctx, storage = request.app[CTX], request.app[STORAGE]
    body = await read_json(request)
    code = json_field(body, "code", str)
    if len(code) > 200:
        raise RemoteProtocolError("api.bad_request", "code too long")
    sign, agree = _device_body(body)
    proof = b64_field(body, "proof", 64)
    node = ctx.identity.name
    try:
        member = member_id(handle_of_code(code), node)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.forbidden", "unknown enrollment code") from exc
    enforce_rate(request, "member", member)
    if await storage.code_member(secret_hash(code)) != member:
        raise RemoteProtocolError("api.forbidden", "unknown enrollment code")
    # Proof of possession before the code is spent: a wrong signature costs nothing.
    VerifyKey(sign).verify(
        enroll_message(code=code, member=member, node=node, sign=sign, agree=agree), proof
    )
    now = ctx.clock()
    refused = await storage.enroll_device(
        secret_hash(code), member, key_id(sign), sign, agree, now
    )
    if refused == "code":
        raise RemoteProtocolError("api.forbidden", "enrollment code already used or expired")
    if refused == "device":
        raise RemoteProtocolError("api.conflict", "this device key is already registered")
    record = await _active_member(request, member)
    attestation = await attest_member(storage, ctx.identity, record, now)
    return web.json_response({"member": member, "node": node, "attestation": b64u(attestation)})


# ---------------------------------------------------------------------------- sessions


@routes.post(PREFIX + "/session")
async def open_session(request: web.Request) -> web.Response:
    ctx, storage = request.app[CTX], request.app[STORAGE]
    body = await read_json(request)
    member = json_field(body, "member", str)
    kid = json_field(body, "kid", str)
    ts = json_field(body, "ts", int)
    nonce = b64_field(body, "nonce")
    sig = b64_field(body, "sig", 64)
    try:
        parse_member_id(member)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", exc.message) from exc
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise RemoteProtocolError("api.bad_request", f"nonce must be {NONCE_MIN}-{NONCE_MAX} bytes")
    enforce_rate(request, "member", member)
    now = ctx.clock()
    if abs(ts - now) > SKEW_MS:
        raise RemoteProtocolError("api.unauthorized", "ts outside the skew window: check the clock")
    await _active_member(request, member)
    device = await storage.get_device(kid)
    if device is None or device.member != member or device.status != "active":
        raise RemoteProtocolError("api.unauthorized", "not an active device of this member")
    message = session_message(member=member, node=ctx.identity.name, kid=kid, ts=ts, nonce=nonce)
    VerifyKey(device.sign_key).verify(message, sig)
    # A signed login is good once: its nonce is kept (with the envelope replay cache)
    # for longer than the skew window.
    replay_id = sha256(b"session\x00" + kid.encode() + b"\x00" + nonce)
    if not await storage.remember_envelope(replay_id, "session:" + member, now + 2 * SKEW_MS):
        raise RemoteProtocolError("api.unauthorized", "this login was already used")
    token = b64u(ctx.rng(TOKEN_BYTES))
    expires = now + SESSION_TTL_MS
    await storage.create_session(secret_hash(token), member, kid, now, expires)
    return web.json_response({"token": token, "expires_ms": expires})


@routes.delete(PREFIX + "/session")
async def close_session(request: web.Request) -> web.Response:
    session = await session_of(request)
    await request.app[STORAGE].delete_session(session.token_hash)
    return web.json_response({"ok": True})


# ---------------------------------------------------------------------------- me, devices


def _device_view(d: Any) -> dict[str, Any]:
    return {"kid": d.kid, "sign": b64u(d.sign_key), "agree": b64u(d.agree_key),
            "created_ms": d.created_ms}  # fmt: skip


@routes.get(PREFIX + "/me")
async def me(request: web.Request) -> web.Response:
    session = await session_of(request)
    storage = request.app[STORAGE]
    record = await _active_member(request, session.member)
    devices = await storage.list_devices(session.member)
    return web.json_response(
        {
            "member": record.id, "node": request.app[CTX].identity.name, "org": record.org,
            "title": record.title, "industry": record.industry, "device": session.device,
            "devices": [_device_view(d) for d in devices],
        }  # fmt: skip
    )


@routes.post(PREFIX + "/devices")
async def add_device(request: web.Request) -> web.Response:
    """Register another device of the session's member; answer the new attestation.

    The member's forums learn of it only from a ``device.add`` event their client signs.
    """
    session = await session_of(request)
    ctx, storage = request.app[CTX], request.app[STORAGE]
    body = await read_json(request)
    sign, agree = _device_body(body)
    proof = b64_field(body, "proof", 64)
    node = ctx.identity.name
    message = device_message(member=session.member, node=node, sign=sign, agree=agree)
    VerifyKey(sign).verify(message, proof)
    now = ctx.clock()
    if not await storage.add_device(session.member, key_id(sign), sign, agree, now):
        raise RemoteProtocolError("api.conflict", "this device key is already registered")
    record = await _active_member(request, session.member)
    attestation = await attest_member(storage, ctx.identity, record, now)
    return web.json_response({"kid": key_id(sign), "attestation": b64u(attestation)})


@routes.delete(PREFIX + "/devices/{kid}")
async def remove_device(request: web.Request) -> web.Response:
    session = await session_of(request)
    ctx, storage = request.app[CTX], request.app[STORAGE]
    kid = request.match_info["kid"]
    devices = await storage.list_devices(session.member)
    if kid not in {d.kid for d in devices}:
        raise RemoteProtocolError("api.not_found", "no such active device")
    if len(devices) == 1:
        raise RemoteProtocolError("api.conflict", "cannot remove the only device")
    await storage.revoke_device(session.member, kid, ctx.clock())
    record = await _active_member(request, session.member)
    attestation = await attest_member(storage, ctx.identity, record, ctx.clock())
    return web.json_response({"kid": kid, "attestation": b64u(attestation)})


# ---------------------------------------------------------------------------- directory


def federation_request(app: web.Application) -> Any:
    """``Federation.request`` when the delivery layer runs, else None."""
    try:
        from ..federation import FEDERATION  # type: ignore[attr-defined]
    except ImportError:
        return None
    federation = app.get(FEDERATION)
    return None if federation is None else federation.request


@routes.get(PREFIX + "/members/{member}/attestation")
async def member_attestation(request: web.Request) -> web.Response:
    await session_of(request)
    ctx = request.app[CTX]
    member = request.match_info["member"]
    try:
        parse_member_id(member)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", exc.message) from exc
    data = await lookup_attestation(
        request.app[STORAGE], ctx.identity, member, federation_request(request.app)
    )
    return web.json_response({"member": member, "attestation": b64u(data)})


# ---------------------------------------------------------------------------- node keys

RELAY_FRESH_MS: Final = 60 * 60 * 1000  # refetch a pinned descriptor in its last hour
ROTATIONS_PATH: Final = "/_pf/v1/rotations"  # protocol.md §4.4, served by every node
MAX_ROTATIONS_BYTES: Final = 256 * 1024


def _relay_address(request: web.Request, name: str) -> PeerAddress:
    """Where ``name`` publishes its descriptor: https, or http for a loopback name when
    this node itself runs on plain http (development; parse_peer_url refuses it elsewhere)."""
    host = name.rsplit(":", 1)[0] if not name.startswith("[") else name.split("]")[0] + "]"
    plain = request.app[CTX].config.base_url.startswith("http://") and is_loopback_host(host)
    return parse_peer_url(("http://" if plain else "https://") + name)


async def _rotations_of(request: web.Request, name: str, url: str) -> list[bytes]:
    """Rotation statements of ``name``, oldest first: ours from storage (filtered as the
    federation route publishes them), another node's from its public rotations route.
    Trouble fetching them is an empty list: the browser then refuses the new key."""
    ctx = request.app[CTX]
    if name == ctx.identity.name:
        ours = {ctx.identity.keys.kid, *(r.kid for r in ctx.identity.keys.retired)}
        return [r.statement for r in await request.app[STORAGE].list_rotations()
                if r.new_kid in ours and r.old_kid in ours]  # fmt: skip
    try:
        async with request.app[HTTP].get(
            url + ROTATIONS_PATH, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False
        ) as resp:
            raw = await resp.content.read(MAX_ROTATIONS_BYTES + 1) if resp.status == 200 else b""
        body = decode(raw) if 0 < len(raw) <= MAX_ROTATIONS_BYTES else {}
    except (TimeoutError, aiohttp.ClientError, OSError, ProtocolError):
        return []
    items = body.get("rotations") if isinstance(body, dict) else None
    return [i for i in items if isinstance(i, bytes)] if isinstance(items, list) else []


@routes.get(PREFIX + "/nodes/{name}/descriptor")
async def node_descriptor(request: web.Request) -> web.Response:
    """Another node's descriptor, bytes exactly as that node signed them (specs/web.md,
    trust model): the page may connect to its own origin only, so its home node relays.

    The browser verifies the bytes itself and pins them; the node adds no trust, which is
    why a peer it has not approved is relayed too (fetched from ``https://NAME``, the only
    URL a node name stands for). ``?rotations=1`` adds the node's rotation statements,
    which a browser that pinned an older key needs to believe the new one.
    """
    await session_of(request)
    ctx = request.app[CTX]
    name = request.match_info["name"]
    try:
        name = check_node_name(name)
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", exc.message) from exc
    now = ctx.clock()
    data: bytes | None
    if name == ctx.identity.name:
        data, url = ctx.identity.descriptor(now)[1], ctx.config.base_url
    else:
        peer = await request.app[STORAGE].get_peer(name)
        data = peer.descriptor if peer is not None else None
        url = peer.url if peer is not None else _relay_address(request, name).url
        fresh = data is not None and _valid_for(data) > now + RELAY_FRESH_MS
        if data is None or not fresh:
            if peer is not None and peer.status == "blocked":
                raise RemoteProtocolError("api.forbidden", f"{name} is blocked by this node")
            _, data = await fetch_descriptor(request.app[HTTP], PeerAddress(url, name), now)
    answer: dict[str, Any] = {"node": name, "descriptor": b64u(data)}
    if request.query.get("rotations") == "1":
        answer["rotations"] = [b64u(r) for r in await _rotations_of(request, name, url)]
    return web.json_response(answer)


def _valid_for(data: bytes) -> int:
    """``valid_until`` of descriptor bytes this node verified when it pinned them."""
    try:
        obj = decode(data)
        return int(obj["valid_until"]) if isinstance(obj, dict) else 0
    except (ProtocolError, KeyError, TypeError, ValueError):
        return 0


__all__ = ["CODE_TTL_MS", "PREFIX", "Session", "b64_field", "routes", "session_of"]
