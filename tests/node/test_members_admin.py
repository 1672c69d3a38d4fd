"""Admin API for members: add (one-time code, hashed), list, devices, remove."""

from __future__ import annotations

from typing import Any

from node.app import make_app
from node.context import STORAGE, NodeContext
from node.directory import secret_hash

from .conftest import NAME


def _auth(ctx: NodeContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.admin_token}"}


async def test_add_list_new_code_remove(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await aiohttp_client(make_app(ctx))
    h = _auth(ctx)
    resp = await client.post(
        "/admin/members", json={"handle": "alice", "org": "Acme", "title": "CEO"}, headers=h
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["member"] == f"@alice:{NAME}"
    code = body["enrollment_code"]
    assert code.startswith("alice.") and len(code) > 20

    again = await client.post("/admin/members", json={"handle": "alice", "org": "Acme"}, headers=h)
    assert again.status == 409
    assert "already exists" in (await again.json())["message"]

    fresh = await client.post(
        "/admin/members", json={"handle": "alice", "org": "Acme", "new_code": True}, headers=h
    )
    assert fresh.status == 200
    assert (await fresh.json())["enrollment_code"] != code

    listed = await (await client.get("/admin/members", headers=h)).json()
    assert [m["member"] for m in listed["members"]] == [f"@alice:{NAME}"]
    assert listed["members"][0]["status"] == "invited"

    devices = await client.get("/admin/members/alice/devices", headers=h)
    assert devices.status == 200 and (await devices.json())["devices"] == []

    removed = await client.post("/admin/members/alice/remove", headers=h)
    assert (await removed.json())["status"] == "removed"
    assert (await client.post("/admin/members/nobody/remove", headers=h)).status == 404


async def test_codes_are_stored_hashed(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await aiohttp_client(make_app(ctx))
    resp = await client.post(
        "/admin/members", json={"handle": "bob", "org": "Beta"}, headers=_auth(ctx)
    )
    code = (await resp.json())["enrollment_code"]
    db = ctx.data.db.read_bytes() + _wal(ctx)
    assert code.encode() not in db
    storage = client.app[STORAGE]
    assert await storage.code_member(secret_hash(code)) == f"@bob:{NAME}"


def _wal(ctx: NodeContext) -> bytes:
    wal = ctx.data.db.with_name(ctx.data.db.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


async def test_bad_input_is_coded(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await aiohttp_client(make_app(ctx))
    h = _auth(ctx)
    bad = await client.post("/admin/members", json={"handle": "Bad Handle", "org": "X"}, headers=h)
    assert bad.status == 400 and (await bad.json())["error"] == "api.bad_request"
    no_org = await client.post("/admin/members", json={"handle": "carol"}, headers=h)
    assert no_org.status == 400
    assert (await client.post("/admin/members", json={"handle": "x", "org": "Y"})).status == 401
