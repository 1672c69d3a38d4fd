"""The app through aiohttp's test client: routes, error mapping, limits, admin guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from node.app import make_app
from node.context import NodeContext
from node.errors import MSGPACK
from node.routes.admin import check_admin
from protocol.codec import decode
from protocol.descriptor import verify_descriptor
from protocol.errors import ProtocolError, RemoteProtocolError

from .conftest import NAME, NOW_MS, make_ctx

SECRET = "secret-forum-content-4711"


def _auth(ctx: NodeContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.admin_token}"}


async def _client(aiohttp_client: Any, ctx: NodeContext) -> Any:
    app = make_app(ctx)

    async def boom(request: web.Request) -> web.Response:
        raise ValueError(SECRET)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app.router.add_get("/test/boom", boom)
    app.router.add_post("/_pf/v1/test-echo", echo)
    return await aiohttp_client(app)


async def test_healthz_and_descriptor(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _client(aiohttp_client, ctx)
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["name"] == NAME
    assert resp.headers["X-Request-Id"]
    resp = await client.get("/.well-known/peerforum")
    assert resp.status == 200 and resp.content_type == MSGPACK
    desc = verify_descriptor(await resp.read(), expected_name=NAME, now_ms=NOW_MS)
    assert desc.keys.current[0] == ctx.identity.keys.verify_key
    assert desc.endpoints["inbox"] == f"http://{NAME}/_pf/v1/inbox"


async def test_unknown_route_is_coded_json(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _client(aiohttp_client, ctx)
    resp = await client.get("/no/such/thing")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"] == "api.not_found" and body["request_id"]


async def test_unexpected_exception_leaks_nothing(
    aiohttp_client: Any, ctx: NodeContext, caplog: pytest.LogCaptureFixture
) -> None:
    client = await _client(aiohttp_client, ctx)
    resp = await client.get("/test/boom")
    assert resp.status == 500
    text = await resp.text()
    assert SECRET not in text
    body = json.loads(text)
    assert body["error"] == "api.internal"
    assert body["request_id"] in body["message"]
    # The log has the traceback, but not the exception's message.
    from node.logs import JsonFormatter

    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"exception": "ValueError"' in line for line in lines)
    assert not any(SECRET in line for line in lines)


async def test_federation_routes_answer_errors_in_msgpack(
    aiohttp_client: Any, ctx: NodeContext
) -> None:
    client = await _client(aiohttp_client, ctx)
    resp = await client.get("/_pf/v1/test-echo")  # wrong method
    assert resp.content_type == MSGPACK
    assert decode(await resp.read())["error"] == "api.bad_request"


async def test_body_too_large_is_refused(aiohttp_client: Any, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "d", "max_body_bytes = 1000\n")
    small = ctx.config.limits.max_body_bytes
    client = await _client(aiohttp_client, ctx)
    resp = await client.post("/_pf/v1/test-echo", data=b"x" * (small + 1))
    assert resp.status == 413
    assert decode(await resp.read())["error"] == "api.too_large"

    async def chunks() -> Any:  # no Content-Length: caught while reading
        for _ in range(small // 65536 + 2):
            yield b"y" * 65536

    resp = await client.post("/_pf/v1/test-echo", data=chunks())
    assert resp.status == 413


async def test_address_rate_limit(aiohttp_client: Any, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "d", "ip_rps = 1\nip_burst = 2\n")
    client = await _client(aiohttp_client, ctx)
    statuses = [(await client.get("/.well-known/peerforum")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    resp = await client.get("/.well-known/peerforum")
    assert (await resp.json())["error"] == "api.rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await client.get("/healthz")).status == 200  # monitoring is never limited
    metrics = await (await client.get("/metrics")).text()
    assert 'peerforum_rate_limited_total{kind="ip"} 2' in metrics
    assert 'peerforum_http_errors_total{code="api.rate_limited"} 2' in metrics


async def test_admin_needs_token(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _client(aiohttp_client, ctx)
    assert (await client.get("/admin/status")).status == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.get("/admin/status", headers=bad)).status == 401
    resp = await client.get("/admin/status", headers=_auth(ctx))
    assert resp.status == 200
    status = await resp.json()
    assert status["name"] == NAME and status["fingerprint"] == ctx.identity.fingerprint
    proxied = {**_auth(ctx), "X-Forwarded-For": "203.0.113.9"}
    assert (await client.get("/admin/status", headers=proxied)).status == 403


def _request_from(remote: str, headers: dict[str, str]) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (remote, 40000) if name == "peername" else default
    )
    return make_mocked_request("GET", "/admin/status", headers=headers, transport=transport)


@pytest.mark.parametrize("remote", ["203.0.113.9", "10.0.0.2", "::ffff:1.2.3.4"])
def test_admin_refuses_non_loopback(remote: str) -> None:
    with pytest.raises(ProtocolError) as info:
        check_admin(_request_from(remote, {"Authorization": "Bearer t"}), "t")
    assert info.value.code == "api.forbidden"


@pytest.mark.parametrize("remote", ["127.0.0.1", "::1"])
def test_admin_accepts_loopback_with_token(remote: str) -> None:
    check_admin(_request_from(remote, {"Authorization": "Bearer t"}), "t")
    with pytest.raises(RemoteProtocolError):
        check_admin(_request_from(remote, {}), "t")


async def test_admin_peer_errors(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _client(aiohttp_client, ctx)
    h = _auth(ctx)
    cases = [
        ({"url": "http://peer.example"}, 400),  # plain http off loopback
        ({"url": "https://peer.example/path"}, 400),
        ({"url": f"http://{NAME}"}, 409),  # ourselves
        ({"url": "http://127.0.0.1:1"}, 503),  # nobody listens there
        ({}, 400),
    ]
    for body, status in cases:
        resp = await client.post("/admin/peers", json=body, headers=h)
        assert resp.status == status, (body, await resp.text())
    resp = await client.post("/admin/peers", data=b"[1]", headers=h)
    assert resp.status == 415
    resp = await client.post("/admin/peers/ghost.example/approve", headers=h)
    assert resp.status == 404


async def test_admin_key_rotation(aiohttp_client: Any, ctx: NodeContext) -> None:
    client = await _client(aiohttp_client, ctx)
    old = ctx.identity.keys.kid
    resp = await client.post("/admin/key/rotate", headers=_auth(ctx))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["old_kid"] == old and body["kid"] != old
    desc = verify_descriptor(
        await (await client.get("/.well-known/peerforum")).read(),
        expected_name=NAME,
        now_ms=NOW_MS,
    )
    assert desc.kid == body["kid"]
    assert [o.key.key_id for o in desc.keys.old] == [old]
