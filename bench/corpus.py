"""A node's database holding many formed forums, written directly before the node starts.

For ``rss_forums_mib`` (1,000 forums of 10 members, 20 entries each) going through the
API would cost 20,000 round trips plus the members' client-side folds, about a minute on
two cores for data whose only purpose is to sit in the node's memory. Instead each forum
is built with the hub's own pure functions — ``check_event`` (every rule and signature
checked) then ``append_entry`` signed with the node's real key — and written with the
node's own storage layer (``Storage.append_entries`` with the ``dump_state`` snapshot),
exactly the rows and snapshot the node writes when it sequences them itself. The node
is then started on that data dir as usual.

Each forum: forum.create, 9 member.invite, 9 member.accept, 1 epoch.commit = 20 entries,
10 active members, all of this node (the hub), one device each.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from node.config import StorageConfig
from node.forums.snapshot import dump_state
from node.keystore import load_keys
from node.storage import Storage
from node.storage.forums import StoredEntry
from protocol.descriptor import Device, build_attestation
from protocol.group import seal_epoch
from protocol.keys import AgreementKey, SigningKey, VerifyKey
from protocol.log import ZERO_HASH, Entry, Event, append_entry, build_event, make_forum_id
from protocol.rules import ForumState, check_event

MEMBERS = 10
T0 = 1_800_000_000_000

Forum = tuple[str, list[tuple[int, bytes, bytes, bytes]], bytes, int, bytes]


class _Hub:
    """The node's key and ten members with one device each, attested by the node."""

    def __init__(self, node: str, seed: bytes) -> None:
        self.node, self.key = node, SigningKey(seed)
        self.signs = [SigningKey(bytes([i + 1]) * 32) for i in range(MEMBERS)]
        self.agrees = [AgreementKey(bytes([i + 101]) * 32) for i in range(MEMBERS)]
        self.ids = [f"@m{i}:{node}" for i in range(MEMBERS)]
        self.atts = [
            build_attestation(node=node, member=self.ids[i], org=f"Org {i}", ts=T0, key=self.key,
                              devices=[Device(self.signs[i].verify_key, self.agrees[i].public)])
            .to_wire()
            for i in range(MEMBERS)
        ]  # fmt: skip

    def lookup(self, name: str, kid: str, ts: int) -> VerifyKey | None:
        return self.key.verify_key if (name, kid) == (self.node, self.key.key_id) else None

    def forum(self, n: int) -> Forum:
        """Forum number ``n``: (id, entry rows, snapshot, head seq, head hash)."""
        forum, ts = make_forum_id(n.to_bytes(16, "big"), self.node), T0 + n
        state: ForumState | None = None
        entries: list[Entry] = []

        def sequence(author: int, type: str, body: dict[str, Any]) -> Event:
            nonlocal state
            ev = build_event(
                forum=forum,
                type=type,
                author=self.ids[author],
                ts=ts,
                epoch=0,
                device_key=self.signs[author],
                nonce=os.urandom(16),
                body=body,
            )
            after = check_event(state, ev, node_keys=self.lookup)
            prev, seq = (state.head, state.seq + 1) if state else (ZERO_HASH, 1)
            entry = append_entry(prev, seq, ev.raw, self.key, self.node, ts)
            state = replace(after, seq=entry.seq, head=entry.hash)
            entries.append(entry)
            return ev

        ids = self.ids
        sequence(0, "forum.create", {"hub": self.node, "attestation": self.atts[0]})
        invites = [sequence(0, "member.invite", {"candidate": ids[i], "attestation": self.atts[i]})
                   for i in range(1, MEMBERS)]  # fmt: skip
        for i in range(1, MEMBERS):
            sequence(i, "member.accept", {"invite": invites[i - 1].event_id})
        recipients = [a.public for a in self.agrees]
        sealed = seal_epoch(os.urandom(32), forum=forum, epoch=1, recipients=recipients)
        sequence(0, "epoch.commit", {"epoch": 1, "admit": sorted(ids[1:]),
                                     "secrets": [s.to_wire() for s in sealed]})  # fmt: skip
        assert state is not None
        rows = [(e.seq, e.hash, e.signed_event.event_id, e.raw) for e in entries]
        return forum, rows, dump_state(state), state.seq, state.head


def _forums(node: str, seed: bytes, first: int, count: int) -> list[Forum]:
    hub = _Hub(node, seed)
    return [hub.forum(n) for n in range(first, first + count)]


async def _write(db: Path, node: str, forums: Sequence[Forum]) -> None:
    storage = await Storage.open(db, StorageConfig(), lambda: T0)
    try:
        writes = [
            storage.append_entries(forum, node, [StoredEntry(*r) for r in rows], snap, seq, head,
                                   False, T0)
            for forum, rows, snap, seq, head in forums
        ]  # fmt: skip
        await asyncio.gather(*writes)  # group commit: a few transactions for all of them
    finally:
        await storage.close()


def build(data: Path, node: str, forums: int, workers: int = 2) -> dict[str, Any]:
    """Write ``forums`` formed forums into ``data``'s database; counts and seconds."""
    start = time.monotonic()
    seed = load_keys(data / "node.key").current.seed
    if workers <= 1:  # a pool's start-up costs more than a few dozen forums
        built = _forums(node, seed, 0, forums)
    else:
        per = -(-forums // workers)
        parts = [(i * per, min(per, forums - i * per)) for i in range(workers) if i * per < forums]
        with ProcessPoolExecutor(len(parts), mp_context=get_context("spawn")) as pool:
            chunks = pool.map(_forums, *zip(*[(node, seed, a, n) for a, n in parts], strict=True))
            built = [f for chunk in chunks for f in chunk]
    generated = time.monotonic()
    asyncio.run(_write(data / "node.db", node, built))
    return {"forums": len(built), "entries": sum(len(f[1]) for f in built),
            "generate_s": generated - start, "write_s": time.monotonic() - generated,
            "db_mib": (data / "node.db").stat().st_size / 2**20}  # fmt: skip
