"""The inbox kept open as a WebSocket (specs/api.md ``GET /_pf/v1/inbox``), between two
in-process nodes on 127.0.0.1: pushes travel over it, every refusal is answered as the
POST would answer it, and the sender falls back to POST when the socket is refused or
lost — nothing is lost either way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.context import INBOX_SOCKETS
from node.errors import MSGPACK
from protocol.codec import decode, encode
from protocol.errors import CODES

from .test_federation_helpers import Clock, Node, batch, eventually, pair, start_node

FORUM = "!f:hub"
INBOX = "/_pf/v1/inbox"


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    peer = await start_node(tmp_path / "peer", clock)
    await pair(hub, peer)
    hub.forums.members[FORUM] = {peer.name}
    yield hub, peer
    await hub.stop()
    await peer.stop()


def _received(node: Node, transport: str) -> int:
    return int(node.fed.metrics.received.get(transport=transport))


async def _acked(hub: Node, peer: Node, seq: int) -> None:
    async def check() -> bool:
        return await hub.storage.get_ack(peer.name, FORUM) == seq

    await eventually(check)


async def _push(hub: Node, peer: Node, count: int) -> None:
    hub.forums.append(FORUM, count)
    hub.fed.notify_forum(FORUM)
    await _acked(hub, peer, len(hub.forums.logs[FORUM]))


async def test_pushes_travel_over_one_socket(nodes: tuple[Node, Node]) -> None:
    hub, peer = nodes
    for count in (3, 2, 4):
        await _push(hub, peer, count)
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM]
    assert _received(peer, "socket") == 3 and _received(peer, "post") == 0
    assert peer.posts == [INBOX]  # one upgrade, three batches on it
    assert hub.fed.sender(peer.name).socket.answered == 3


async def test_a_get_that_is_no_upgrade_is_a_bad_request(nodes: tuple[Node, Node]) -> None:
    _, peer = nodes
    async with aiohttp.ClientSession() as http, http.get(peer.url + INBOX) as resp:
        assert resp.status == 400
        assert decode(await resp.read())["error"] == "api.bad_request"


async def test_refusals_are_answered_as_the_post_answers_them(nodes: tuple[Node, Node]) -> None:
    _, peer = nodes
    unknown = batch(encode({"v": 1, "from": "x.example"}))  # an envelope from nobody
    cases = [b"\x92\x01", b"\xc1", encode({"v": 1}), b"\x00" * 10, unknown]
    async with aiohttp.ClientSession() as http, http.ws_connect(peer.url + INBOX) as ws:
        for data in cases:
            async with http.post(peer.url + INBOX, data=data,
                                 headers={"Content-Type": MSGPACK}) as resp:  # fmt: skip
                posted, status = decode(await resp.read()), resp.status
            await ws.send_bytes(data)
            answer = decode((await ws.receive()).data)
            if status == 200:
                assert answer == posted, data  # per-envelope results, the same
            else:
                assert answer["error"] == posted["error"], data
                assert CODES[answer["error"]][0] == status and "results" not in answer
        # Text is not a batch: the socket is closed with 1003.
        await ws.send_str("hello")
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1003


async def test_a_refused_upgrade_falls_back_to_post(tmp_path: Path) -> None:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)

    @web.middleware
    async def no_sockets(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
        if request.method == "GET" and request.path == INBOX:  # a proxy without Upgrade
            raise web.HTTPNotFound()
        return await handler(request)

    peer = await start_node(tmp_path / "peer", clock, middlewares=(no_sockets,))
    try:
        await pair(hub, peer)
        hub.forums.members[FORUM] = {peer.name}
        for count in (2, 3):
            await _push(hub, peer, count)
        assert peer.forums.received[FORUM] == hub.forums.logs[FORUM]
        assert _received(peer, "socket") == 0 and _received(peer, "post") == 2
        # Asked once, then POST for a while: not one refused upgrade per batch.
        assert peer.posts.count(INBOX) == 3
    finally:
        await hub.stop()
        await peer.stop()


async def test_a_lost_socket_resends_the_batch_by_post(nodes: tuple[Node, Node]) -> None:
    hub, peer = nodes
    await _push(hub, peer, 2)
    for ws in list(peer.server.app[INBOX_SOCKETS]):  # the receiver drops it (a restart)
        await ws.close()
    await _push(hub, peer, 3)  # the sender finds out on this batch: POST, at once
    assert peer.forums.received[FORUM] == hub.forums.logs[FORUM]
    assert _received(peer, "post") == 1
    await _push(hub, peer, 1)  # and opens a new socket for the next
    assert _received(peer, "socket") == 2
    state = await hub.storage.get_delivery(peer.name)
    assert state.failures == 0  # none of this was a failure of the peer


async def test_rate_limited_over_the_socket_backs_off(tmp_path: Path) -> None:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    peer = await start_node(tmp_path / "peer", clock, limits="peer_rps = 1\npeer_burst = 1\n")
    try:
        await pair(hub, peer)
        hub.forums.members[FORUM] = {peer.name}
        await _push(hub, peer, 1)
        hub.forums.append(FORUM, 1)
        sender = hub.fed.sender(peer.name)
        sender.mark(FORUM)
        assert await sender.round() is True  # refused for now: a retry is due later
        state = await hub.storage.get_delivery(peer.name)
        assert state.failures == 1 and "api.rate_limited" in (state.last_error or "")
        assert state.backoff_ms >= 900  # at least the receiver's retry_after (~1 s here)
    finally:
        await hub.stop()
        await peer.stop()


async def test_a_stopping_node_closes_its_sockets_at_once(tmp_path: Path) -> None:
    clock = Clock()
    hub = await start_node(tmp_path / "hub", clock)
    peer = await start_node(tmp_path / "peer", clock)
    await pair(hub, peer)
    hub.forums.members[FORUM] = {peer.name}
    try:
        await _push(hub, peer, 2)
        assert len(peer.server.app[INBOX_SOCKETS]) == 1
        started = time.monotonic()
        await peer.stop()
        assert time.monotonic() - started < 3  # not the shutdown grace period
    finally:
        await hub.stop()
    await asyncio.sleep(0)
