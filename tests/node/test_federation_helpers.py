"""Helpers for federation tests (no tests here): nodes as in-process apps on 127.0.0.1,
a shared settable clock, peers pinned through the real peering code, a fake ForumEngine
and a way to sign envelopes a correct sender would refuse to build."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from node.app import make_app
from node.config import parse_config
from node.context import FEDERATION, STORAGE, NodeContext
from node.datadir import DataDir, init_data_dir
from node.federation import Federation
from node.identity import NodeIdentity
from node.keystore import load_keys
from node.peering import PeerAddress, approve_peer, offer_peer
from node.storage import Storage
from protocol.codec import encode
from protocol.descriptor import KeySet, build_descriptor
from protocol.keys import SigningKey, sign_object

from .conftest import NOW_MS, fixed_rng

MSGPACK = "application/vnd.peerforum+msgpack"


class Clock:
    def __init__(self, now: int = NOW_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeForums:
    """The ForumEngine seams delivery uses, over in-memory logs."""

    name: str
    logs: dict[str, list[bytes]] = field(default_factory=dict)  # forums we are hub of
    received: dict[str, list[bytes]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def append(self, forum: str, count: int, pad: int = 16) -> None:
        log = self.logs.setdefault(forum, [])
        for _ in range(count):
            seq = len(log) + 1
            log.append(encode({"forum": forum, "seq": seq, "hub": self.name, "pad": b"x" * pad}))

    def participants(self, forum: str) -> set[str]:
        return self.members.get(forum, set())

    def head_of(self, forum: str) -> int:
        return len(self.logs.get(forum, []))

    async def read(self, forum: str, from_seq: int, limit: int) -> tuple[int, list[bytes]]:
        log = self.logs.get(forum, [])
        return len(log), log[from_seq - 1 : from_seq - 1 + limit]

    async def attachments_for(self, forum: str, first: int, last: int) -> dict[int, bytes]:
        return {}  # detached content: tests/node/test_attachments.py

    async def on_entries(
        self, origin: str, forum: str, entries: list[bytes], attachments: Any = None
    ) -> int:
        got = self.received.setdefault(forum, [])
        for entry in entries:  # contiguous only, idempotent
            if entry not in got:
                got.append(entry)
        return len(got)

    async def on_submit(
        self, origin: str, forum: str, events: list[bytes], attachments: Any = None
    ) -> list[Any]:
        self.calls.append(("submit", (origin, forum)))
        return []

    async def on_backfill(self, origin: str, forum: str, from_seq: int, limit: int) -> Any:
        head, entries = await self.read(forum, from_seq, limit)
        return {"forum": forum, "head": head, "entries": entries}

    async def on_head(self, origin: str, body: dict[str, Any]) -> None:
        self.calls.append(("head", origin))

    async def on_proof(self, origin: str, body: dict[str, Any]) -> None:
        self.calls.append(("proof", origin))

    async def on_invite(self, origin: str, forum: str, entry: bytes) -> None:
        self.calls.append(("invite", forum))

    async def on_result(self, origin: str, body: dict[str, Any]) -> None:
        self.calls.append(("result", origin))


@dataclass
class Node:
    ctx: NodeContext
    server: TestServer
    forums: FakeForums
    posts: list[str] = field(default_factory=list)  # federation paths this node received

    @property
    def batches(self) -> int:
        """Inbox batches this node received, POSTed or over the inbox socket."""
        received = self.fed.metrics.received
        return int(received.get(transport="post") + received.get(transport="socket"))

    @property
    def name(self) -> str:
        return self.ctx.identity.name

    @property
    def url(self) -> str:
        return self.ctx.config.base_url

    @property
    def fed(self) -> Federation:
        return self.server.app[FEDERATION]

    @property
    def storage(self) -> Storage:
        return self.server.app[STORAGE]

    async def stop(self) -> None:
        await self.server.close()


def node_ctx(root: Path, clock: Clock, port: int, limits: str = "") -> NodeContext:
    name = f"127.0.0.1:{port}"
    data = DataDir(root)
    if not data.exists():
        init_data_dir(root, name, name, fixed_rng(name), NOW_MS)
    if limits:
        data.config.write_text(data.config.read_text().replace("[limits]\n", "[limits]\n" + limits))
    config = parse_config(data.config.read_text())
    identity = NodeIdentity(config.name, config.base_url, load_keys(data.key))
    return NodeContext(
        data=data, config=config, identity=identity, admin_token=data.read_admin_token(),
        clock=clock, rng=fixed_rng("ctx/" + name),
    )  # fmt: skip


async def start_node(
    root: Path, clock: Clock, port: int | None = None, limits: str = "",
    middlewares: Sequence[Any] = (),
) -> Node:  # fmt: skip
    port = port or free_port()
    ctx = node_ctx(root, clock, port, limits)
    app = make_app(ctx)
    forums = FakeForums(ctx.identity.name)
    node_box: list[Node] = []

    @web.middleware
    async def record(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
        if request.path.startswith("/_pf/") and node_box:
            node_box[0].posts.append(request.path)
        return await handler(request)

    app.middlewares.insert(0, record)
    for extra in reversed(middlewares):  # before the node's own: a proxy in front of it
        app.middlewares.insert(1, extra)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    app[FEDERATION].forums_provider = lambda: forums
    node = Node(ctx, server, forums)
    node_box.append(node)
    return node


async def pin(storage: Storage, name: str, url: str, descriptor: bytes, now: int) -> None:
    """Approve a peer exactly as the operator would (offer, then approve)."""
    from protocol.codec import decode
    from protocol.descriptor import Descriptor

    desc = Descriptor.from_wire(decode(descriptor))
    await offer_peer(storage, PeerAddress(url, name), desc, descriptor, now)
    await approve_peer(storage, name, now)


async def pair(a: Node, b: Node) -> None:
    now = a.ctx.clock()
    await pin(a.storage, b.name, b.url, b.ctx.identity.descriptor(now)[1], now)
    await pin(b.storage, a.name, a.url, a.ctx.identity.descriptor(now)[1], now)


def descriptor_for(name: str, key: SigningKey, now: int, keys: KeySet | None = None) -> bytes:
    desc = build_descriptor(
        name=name, key=key, issued=now, valid_until=now + 86_400_000,
        endpoints={"inbox": f"https://{name}/_pf/v1/inbox"}, keys=keys,
    )  # fmt: skip
    return encode(desc.to_wire())


def forge(key: SigningKey, **fields: Any) -> bytes:
    """An envelope signed by ``key`` with exactly ``fields`` (no origin check)."""
    unsigned = {"v": 1, "kid": key.key_id, **fields}
    return encode(sign_object("envelope", unsigned, key))


def batch(*envelopes: bytes) -> bytes:
    return encode({"v": 1, "envelopes": list(envelopes)})


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait (bounded) for something another task does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
