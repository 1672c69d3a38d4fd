"""In-process forum engines over real sqlite files, joined by a scripted fake federation.

``Net`` stands in for node/federation (one layer mocked): ``enqueue`` queues envelopes,
``notify_forum`` queues a push of entries from each participant's last ack, ``request``
answers backfill straight from the hub's engine. ``flush`` delivers until quiet, so a
test decides exactly when messages move (and which nodes are down).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.config import StorageConfig
from node.forums import ForumEngine
from node.forums.keys import KeyBook
from node.keystore import NodeKeys
from node.metrics import Registry
from node.storage import Storage
from protocol.errors import ProtocolError
from protocol.log import Event
from specs.vectors.generate_forum import NODES, T0, A, B, Scene


class Port:
    def __init__(self, net: Net, me: str) -> None:
        self.net, self.me = net, me

    def notify_forum(self, forum: str) -> None:
        self.net.queue.append((self.me, "", "notify", {"forum": forum}))

    async def enqueue(self, destination: str, kind: str, body: dict[str, Any]) -> None:
        self.net.queue.append((self.me, destination, kind, body))

    async def request(self, destination: str, path: str, kind: str, body: dict[str, Any]) -> Any:
        if destination in self.net.down or destination not in self.net.engines:
            raise ConnectionError(destination)
        assert path == f"/_pf/v1/forums/{body['forum']}/backfill" and kind == "forum.backfill"
        self.net.requests += 1
        engine = self.net.engines[destination]
        return await engine.on_backfill(self.me, body["forum"], body["from"], body["limit"])


class Net:
    def __init__(self, scene: Scene, root: Path) -> None:
        self.scene, self.root = scene, root
        self.engines: dict[str, ForumEngine] = {}
        self.storages: dict[str, Storage] = {}
        self.queue: list[tuple[str, str, str, dict[str, Any]]] = []
        self.acks: dict[tuple[str, str, str], int] = {}  # (hub, node, forum) -> seq
        self.down: set[str] = set()
        self.errors: list[tuple[str, str, str]] = []  # (to, kind, code)
        self.requests = 0
        self.clock = T0 + 3_600_000

    async def start(self, name: str) -> ForumEngine:
        storage = await Storage.open(self.root / f"{name}.db", StorageConfig(), lambda: self.clock)
        keys = NodeKeys(self.scene.node_key[name], T0)
        book = KeyBook(None, name, lambda: keys)
        for node in NODES:
            if node != name:
                k = self.scene.node_key[node]
                book.add(node, k.key_id, k.verify_key.raw)
        engine = ForumEngine(
            storage, name=name, node_keys=lambda: keys, clock=lambda: self.clock,
            registry=Registry(), federation=lambda: Port(self, name), keybook=book,
        )  # fmt: skip
        engine.head_interval_s = 3600.0  # tests issue heads explicitly
        engine.backfill_retry_s = 0.001
        await engine.start()
        self.engines[name], self.storages[name] = engine, storage
        return engine

    async def stop(self, name: str) -> None:
        await self.engines.pop(name).close()
        await self.storages.pop(name).close()

    async def close(self) -> None:
        for name in list(self.engines):
            await self.stop(name)

    async def settle(self) -> None:
        """Let background work (backfill tasks) finish."""
        for _ in range(100):
            tasks = [
                t for e in self.engines.values() for t in e._tasks
                if not t.done() and not t.get_name().startswith("pf-sequencer")
            ]  # fmt: skip
            if not tasks:
                return
            await asyncio.wait(tasks, timeout=5)

    async def flush(self) -> None:
        for _ in range(10_000):
            await self.settle()
            if not self.queue:
                return
            src, dest, kind, body = self.queue.pop(0)
            if kind == "notify":
                await self._push(src, body["forum"])
                continue
            engine = self.engines.get(dest)
            if engine is None or dest in self.down:
                continue
            try:
                await deliver(engine, src, kind, body)
            except ProtocolError as exc:
                self.errors.append((dest, kind, exc.code))
        raise AssertionError("the fake network never went quiet")

    async def _push(self, hub: str, forum: str) -> None:
        engine = self.engines[hub]
        for node in sorted(engine.participants(forum)):
            if node in self.down or node not in self.engines:
                continue
            first = self.acks.get((hub, node, forum), 0) + 1
            _, entries = await engine.read(forum, first, 500)
            if entries:
                # Attachments of detached entries ride beside them (protocol §6.9).
                kept = await engine.attachments_for(forum, first, first + len(entries) - 1)
                try:
                    ack = await self.engines[node].on_entries(
                        hub, forum, entries, list(kept.values()) or None
                    )
                except ProtocolError as exc:
                    self.errors.append((node, "forum.entries", exc.code))
                    continue
                self.acks[(hub, node, forum)] = ack


async def deliver(engine: ForumEngine, src: str, kind: str, body: dict[str, Any]) -> None:
    if kind == "forum.submit":
        await engine.on_submit(src, body["forum"], body["events"], body.get("attachments"))
    elif kind == "forum.result":
        await engine.on_result(src, body)
    elif kind == "forum.head":
        await engine.on_head(src, body)
    elif kind == "forum.proof":
        await engine.on_proof(src, body)
    elif kind == "forum.invite":
        await engine.on_invite(src, body["forum"], body["entry"])
    else:
        raise AssertionError(kind)


class Script:
    """Events of one forum's life, built with the vectors' fixed keys."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.t = T0

    def ev(
        self, type: str, author: str, body: dict[str, Any], epoch: int, device: int = 0
    ) -> Event:
        self.t += 1000
        return self.scene.event(type, author, body, epoch=epoch, ts=self.t, device=device)

    def create(self, author: str = A) -> Event:
        hub = author.split(":", 1)[1]
        body = {"hub": hub, "attestation": self.scene.attestation(author)}
        return self.ev("forum.create", author, body, 0)

    def commit(self, author: str, n: int, admit: Sequence[str], members: Sequence[str]) -> Event:
        secrets = self.scene.secrets(n, [self.scene.agree_kid(m) for m in members])
        return self.ev(
            "epoch.commit", author, {"epoch": n, "admit": list(admit), "secrets": secrets}, n - 1
        )

    def invite(self, author: str, candidate: str, epoch: int) -> Event:
        body = {"candidate": candidate, "attestation": self.scene.attestation(candidate)}
        return self.ev("member.invite", author, body, epoch)

    def accept(self, candidate: str, invite: Event) -> Event:
        return self.ev("member.accept", candidate, {"invite": invite.event_id}, 0)

    def post(self, author: str, epoch: int, text: str = "hello") -> Event:
        self.t += 1000
        return self.scene.content("post", author, text, epoch=epoch, ts=self.t)


__all__ = ["A", "B", "Net", "Script"]
