"""The descriptor relay: a member's browser may connect only to its own node (CSP
connect-src 'self'), so the home node hands it other nodes' descriptors, bytes unchanged,
for the browser to verify and pin itself (specs/web.md, trust model).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp import web

from node.context import STORAGE, NodeContext
from protocol.codec import encode
from protocol.descriptor import build_descriptor, build_rotation, verify_descriptor
from protocol.keys import SigningKey, unb64u

from .conftest import NAME, NOW_MS
from .test_client_api import API, _app, _auth, _device

DAY_MS = 86_400_000


def _descriptor(name: str, key: SigningKey, issued: int = NOW_MS) -> bytes:
    desc = build_descriptor(name=name, key=key, issued=issued, valid_until=issued + 7 * DAY_MS,
                            endpoints={"inbox": f"http://{name}/_pf/v1/inbox"})  # fmt: skip
    return encode(desc.to_wire())


def _serve(body: bytes, content_type: str = "application/msgpack") -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    return handler


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_own_descriptor_is_relayed_as_served(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await _app(aiohttp_client, ctx, monkeypatch)
    dev = await _device(client, ctx, "alice")
    served = await (await client.get("/.well-known/peerforum")).read()
    resp = await client.get(f"{API}/nodes/{NAME}/descriptor", headers=_auth(dev))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["node"] == NAME and unb64u(body["descriptor"]) == served
    # Without a session there is no relay: it is for this node's members only.
    assert (await client.get(f"{API}/nodes/{NAME}/descriptor")).status == 401
    bad = await client.get(f"{API}/nodes/not%20a%20node/descriptor", headers=_auth(dev))
    assert bad.status == 400 and (await bad.json())["error"] == "api.bad_request"


async def test_pinned_peer_is_relayed_from_its_record(
    aiohttp_client: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer pinned with a descriptor still valid: no fetch (the host does not resolve)."""
    client = await _app(aiohttp_client, ctx, monkeypatch)
    dev = await _device(client, ctx, "alice")
    key = SigningKey(b"\x07" * 32)
    data = _descriptor("peer.invalid", key)
    storage = client.server.app[STORAGE]
    await storage.offer_peer("peer.invalid", "https://peer.invalid", data, "pending", NOW_MS)
    await storage.pin_peer("peer.invalid", data, [(key.key_id, key.verify_key.raw, None)], NOW_MS)
    resp = await client.get(f"{API}/nodes/peer.invalid/descriptor", headers=_auth(dev))
    body = await resp.json()
    assert unb64u(body["descriptor"]) == data
    # An unknown node that cannot be reached is unavailable, never an invented answer.
    resp = await client.get(f"{API}/nodes/nowhere.invalid/descriptor", headers=_auth(dev))
    assert resp.status == 503 and (await resp.json())["error"] == "api.unavailable"


async def test_unknown_node_is_fetched_with_its_rotations(
    aiohttp_client: Any, aiohttp_server: Any, ctx: NodeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node this one never peered with: fetched from its own origin (http on loopback in
    development), verified, relayed byte for byte, with its rotation statements on request."""
    port = _port()
    name = f"127.0.0.1:{port}"
    old, new = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    data = _descriptor(name, new)
    rotation = encode(build_rotation(node=name, old=old, new=new, ts=NOW_MS - DAY_MS).to_wire())
    other = web.Application()
    other.router.add_get("/.well-known/peerforum", _serve(data))
    other.router.add_get("/_pf/v1/rotations", _serve(encode({"rotations": [rotation]})))
    await aiohttp_server(other, port=port)

    client = await _app(aiohttp_client, ctx, monkeypatch)
    dev = await _device(client, ctx, "alice")
    resp = await client.get(f"{API}/nodes/{name}/descriptor", headers=_auth(dev))
    body = await resp.json()
    assert resp.status == 200, body
    assert unb64u(body["descriptor"]) == data and "rotations" not in body
    verify_descriptor(unb64u(body["descriptor"]), expected_name=name, now_ms=NOW_MS)
    resp = await client.get(f"{API}/nodes/{name}/descriptor?rotations=1", headers=_auth(dev))
    assert [unb64u(r) for r in (await resp.json())["rotations"]] == [rotation]
    # A descriptor naming another node is refused by the relay too (D2).
    wrong = web.Application()
    wrong.router.add_get("/.well-known/peerforum", _serve(data))
    port2 = _port()
    await aiohttp_server(wrong, port=port2)
    resp = await client.get(f"{API}/nodes/127.0.0.1:{port2}/descriptor", headers=_auth(dev))
    assert (await resp.json())["error"] == "descriptor.name_mismatch"
