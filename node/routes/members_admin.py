"""Admin API for this node's members (``/admin/members``): the operator admits people.

Admitting a member creates a one-time enrollment code, shown once and stored hashed; the
member's own device enrolls with it (client API) and creates its keys there. Removing a
member ends their sessions and revokes their devices here; the forums they are in learn
of it only through a ``member.leave`` or ``member.remove`` event signed by a member — a
node cannot change a forum's roster on its own (specs §7).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.identity import member_id, parse_member_id

from ..bodies import json_field, read_json
from ..context import CTX, STORAGE
from ..directory import CODE_RANDOM_BYTES, CODE_TTL_MS, new_enrollment_code, secret_hash
from ..storage.members import DeviceRecord, MemberRecord

routes = web.RouteTableDef()
MAX_TEXT = 128  # org, title, industry: attestation text (specs §4.5)


def _text(body: dict[str, Any], name: str, required: bool) -> str | None:
    value = json_field(body, name, str, required=required)
    if value is not None and not 1 <= len(value) <= MAX_TEXT:
        raise RemoteProtocolError("api.bad_request", f"{name} must be 1-{MAX_TEXT} characters")
    return value  # type: ignore[no-any-return]


def _member_of(request: web.Request) -> str:
    """The path's member: a full id of this node, or a bare handle."""
    name = request.app[CTX].identity.name
    given = request.match_info["member"]
    try:
        mid = given if given.startswith("@") else member_id(given, name)
        if parse_member_id(mid)[1] != name:
            raise RemoteProtocolError("api.not_found", f"{mid} is not a member of this node")
    except ProtocolError as exc:
        raise RemoteProtocolError("api.bad_request", exc.message) from exc
    return mid


def member_view(m: MemberRecord, devices: int) -> dict[str, Any]:
    return {
        "member": m.id, "org": m.org, "title": m.title, "industry": m.industry,
        "status": m.status, "devices": devices, "created_ms": m.created_ms,
    }  # fmt: skip


def device_view(d: DeviceRecord) -> dict[str, Any]:
    return {"kid": d.kid, "status": d.status, "created_ms": d.created_ms,
            "revoked_ms": d.revoked_ms}  # fmt: skip


@routes.post("/admin/members")
async def add_member(request: web.Request) -> web.Response:
    ctx, storage = request.app[CTX], request.app[STORAGE]
    body = await read_json(request)
    handle = json_field(body, "handle", str).lstrip("@")
    org = _text(body, "org", True)
    title, industry = _text(body, "title", False), _text(body, "industry", False)
    new_code = json_field(body, "new_code", bool, required=False) or False
    try:
        mid = member_id(handle, ctx.identity.name)
    except ProtocolError as exc:
        raise RemoteProtocolError(
            "api.bad_request", f"handle {handle!r}: lower-case letters, digits, . _ = -"
        ) from exc
    assert org is not None
    now = ctx.clock()
    code = new_enrollment_code(handle, ctx.rng(CODE_RANDOM_BYTES))
    expires = now + CODE_TTL_MS
    created = await storage.add_member(mid, org, title, industry, secret_hash(code), now, expires)
    if not created:
        if not new_code:
            raise RemoteProtocolError(
                "api.conflict", f"member {mid} already exists (pass --new-code for a fresh code)"
            )
        await storage.new_enrollment_code(mid, secret_hash(code), now, expires)
    return web.json_response({"member": mid, "enrollment_code": code, "expires_ms": expires})


@routes.get("/admin/members")
async def list_members(request: web.Request) -> web.Response:
    storage = request.app[STORAGE]
    out = []
    for m in await storage.list_members():
        out.append(member_view(m, len(await storage.list_devices(m.id))))
    return web.json_response({"members": out})


@routes.post("/admin/members/{member}/remove")
async def remove_member(request: web.Request) -> web.Response:
    ctx, storage = request.app[CTX], request.app[STORAGE]
    mid = _member_of(request)
    if not await storage.remove_member(mid, ctx.clock()):
        raise RemoteProtocolError("api.not_found", f"no member {mid}")
    return web.json_response({"member": mid, "status": "removed"})


@routes.get("/admin/members/{member}/devices")
async def member_devices(request: web.Request) -> web.Response:
    storage = request.app[STORAGE]
    mid = _member_of(request)
    if await storage.get_member(mid) is None:
        raise RemoteProtocolError("api.not_found", f"no member {mid}")
    devices = await storage.list_devices(mid, active_only=False)
    return web.json_response({"member": mid, "devices": [device_view(d) for d in devices]})
