"""The storage API: every SQL statement of the node lives below node/storage/.

``Storage`` is what the rest of the node talks to. Its methods speak in records and
bytes, never in SQL or rows, so a PostgreSQL backend can implement the same methods.
Write methods are group-commit jobs (see engine.py); read methods use reader connections.

Adding an area (forums, outbox, members, ...): put its records and methods in a new
module here as a mixin class over ``_Base`` (it gets ``self._engine``) and add it to
``Storage``'s bases, keeping each module small.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from ..config import StorageConfig
from .delivery import DeliveryStore
from .engine import SqliteEngine, StorageError, WriteJob
from .forums import ForumStore
from .members import MemberStore

T = TypeVar("T")
PeerStatus = Literal["pending", "approved", "blocked", "key_changed"]
PEER_STATUSES: tuple[PeerStatus, ...] = ("pending", "approved", "blocked", "key_changed")


@dataclass(frozen=True)
class PeerKey:
    kid: str
    key: bytes
    pinned: bool
    expired_ms: int | None  # None: a current key


@dataclass(frozen=True)
class PeerRecord:
    name: str
    url: str
    status: PeerStatus
    descriptor: bytes | None  # last verified and pinned descriptor
    offered: bytes | None  # descriptor whose keys await the operator's approval
    added_ms: int
    updated_ms: int
    last_seen_ms: int | None
    keys: tuple[PeerKey, ...]

    @property
    def pinned_keys(self) -> tuple[PeerKey, ...]:
        return tuple(k for k in self.keys if k.pinned)


@dataclass(frozen=True)
class Rotation:
    id: int
    old_kid: str
    new_kid: str
    statement: bytes
    created_ms: int


class _Base:
    _engine: SqliteEngine


class NodeStateStore(_Base):
    async def get_state(self, key: str) -> bytes | None:
        value = await self._engine.fetch_value("SELECT value FROM node_state WHERE key = ?", (key,))
        return None if value is None else bytes(value)

    async def set_state(self, key: str, value: bytes) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO node_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._engine.write(job)

    async def record_rotation(
        self, old_kid: str, new_kid: str, statement: bytes, now_ms: int
    ) -> int:
        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO rotations (old_kid, new_kid, statement, created_ms)"
                " VALUES (?, ?, ?, ?)",
                (old_kid, new_kid, statement, now_ms),
            )
            return int(cur.lastrowid or 0)

        return await self._engine.write(job)

    async def list_rotations(self) -> list[Rotation]:
        rows = await self._engine.fetch_all(
            "SELECT id, old_kid, new_kid, statement, created_ms FROM rotations ORDER BY id"
        )
        return [
            Rotation(r["id"], r["old_kid"], r["new_kid"], bytes(r["statement"]), r["created_ms"])
            for r in rows
        ]


class PeerStore(_Base):
    # Every inbound batch checks its envelopes against every pinned peer, and every
    # delivery round and backfill reads its peer: the records are kept in memory. Each
    # peer write below goes through ``_peer_write``, which bumps the generation before and
    # after it, so a read that raced a write is never cached. Other processes write peers
    # only while the node is stopped (the data dir lock).
    _peer_cache: tuple[int, dict[str, PeerRecord]] | None = None
    _peers_gen: int = 0

    async def get_peer(self, name: str) -> PeerRecord | None:
        return (await self._peer_map()).get(name)

    async def list_peers(self) -> list[PeerRecord]:
        return list((await self._peer_map()).values())

    async def _peer_map(self) -> dict[str, PeerRecord]:
        gen, cached = self._peers_gen, self._peer_cache
        if cached is not None and cached[0] == gen:
            return cached[1]
        peers = {p.name: p for p in await self._peers("", ())}
        if gen == self._peers_gen:
            self._peer_cache = (gen, peers)
        return peers

    async def _peer_write(self, job: WriteJob[T]) -> T:
        self._peers_gen += 1
        try:
            return await self._engine.write(job)
        finally:
            self._peers_gen += 1

    async def _peers(self, where: str, params: tuple[str, ...]) -> list[PeerRecord]:
        rows = await self._engine.fetch_all(f"SELECT * FROM peers {where} ORDER BY name", params)
        if not rows:
            return []
        key_rows = await self._engine.fetch_all(
            f"SELECT * FROM peer_keys WHERE peer IN ({','.join('?' * len(rows))})"
            " ORDER BY expired_ms IS NOT NULL, expired_ms DESC, kid",
            [r["name"] for r in rows],
        )
        keys: dict[str, list[PeerKey]] = {}
        for k in key_rows:
            keys.setdefault(k["peer"], []).append(
                PeerKey(k["kid"], bytes(k["key"]), bool(k["pinned"]), k["expired_ms"])
            )
        return [
            PeerRecord(
                name=r["name"],
                url=r["url"],
                status=r["status"],
                descriptor=None if r["descriptor"] is None else bytes(r["descriptor"]),
                offered=None if r["offered"] is None else bytes(r["offered"]),
                added_ms=r["added_ms"],
                updated_ms=r["updated_ms"],
                last_seen_ms=r["last_seen_ms"],
                keys=tuple(keys.get(r["name"], ())),
            )
            for r in rows
        ]

    async def offer_peer(
        self, name: str, url: str, offered: bytes, status: PeerStatus, now_ms: int
    ) -> None:
        """Record a fetched descriptor awaiting approval (creating the peer if new)."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO peers (name, url, status, offered, added_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET url = excluded.url,"
                " status = excluded.status, offered = excluded.offered,"
                " updated_ms = excluded.updated_ms",
                (name, url, status, offered, now_ms, now_ms),
            )

        await self._peer_write(job)

    async def pin_peer(
        self,
        name: str,
        descriptor: bytes,
        keys: list[tuple[str, bytes, int | None]],
        now_ms: int,
    ) -> None:
        """Approve ``name``: pin ``keys`` (kid, key, expired_ms) and its descriptor.

        Pinned keys absent from ``keys`` are retired (expired now)."""

        def job(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE peers SET status = 'approved', descriptor = ?, offered = NULL,"
                " updated_ms = ? WHERE name = ?",
                (descriptor, now_ms, name),
            )
            if cur.rowcount != 1:
                raise StorageError(f"no peer named {name!r}")
            # Pinned keys the new descriptor no longer lists are retired now: they still
            # verify what was signed before, never anything newer.
            kids = [kid for kid, _, _ in keys]
            conn.execute(
                f"UPDATE peer_keys SET expired_ms = ? WHERE peer = ? AND expired_ms IS NULL"
                f" AND kid NOT IN ({','.join('?' * len(kids))})",
                (now_ms, name, *kids),
            )
            for kid, key, expired_ms in keys:
                conn.execute(
                    "INSERT INTO peer_keys (peer, kid, key, pinned, expired_ms)"
                    " VALUES (?, ?, ?, 1, ?) ON CONFLICT (peer, kid) DO UPDATE SET"
                    " pinned = 1, expired_ms = excluded.expired_ms"
                    " WHERE peer_keys.key = excluded.key",
                    (name, kid, key, expired_ms),
                )

        await self._peer_write(job)

    async def set_peer_status(self, name: str, status: PeerStatus, now_ms: int) -> bool:
        """Returns False when there is no such peer."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE peers SET status = ?, updated_ms = ? WHERE name = ?",
                (status, now_ms, name),
            )
            return cur.rowcount == 1

        return await self._peer_write(job)

    async def touch_peer(self, name: str, now_ms: int) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE peers SET last_seen_ms = ? WHERE name = ?", (now_ms, name))

        await self._peer_write(job)

    async def pin_rotated_keys(
        self, peer: str, keys: list[tuple[str, bytes, int | None]], now_ms: int
    ) -> None:
        """Pin the key set a verified rotation statement produced (status unchanged)."""

        def job(conn: sqlite3.Connection) -> None:
            for kid, key, expired_ms in keys:
                conn.execute(
                    "INSERT INTO peer_keys (peer, kid, key, pinned, expired_ms)"
                    " VALUES (?, ?, ?, 1, ?) ON CONFLICT (peer, kid) DO UPDATE SET"
                    " pinned = 1, expired_ms = excluded.expired_ms"
                    " WHERE peer_keys.key = excluded.key",
                    (peer, kid, key, expired_ms),
                )
            conn.execute("UPDATE peers SET updated_ms = ? WHERE name = ?", (now_ms, peer))

        await self._peer_write(job)

    async def count_peers(self) -> dict[str, int]:
        rows = await self._engine.fetch_all("SELECT status, COUNT(*) FROM peers GROUP BY status")
        counts: dict[str, int] = dict.fromkeys(PEER_STATUSES, 0)
        counts.update({r[0]: r[1] for r in rows})
        return counts


class ReplayStore(_Base):
    async def remember_envelope(self, envelope_id: bytes, peer: str, expires_ms: int) -> bool:
        """Record an envelope id; False when it was already seen (a replay)."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO replay_cache (id, peer, expires_ms) VALUES (?, ?, ?)",
                (envelope_id, peer, expires_ms),
            )
            return cur.rowcount == 1

        return await self._engine.write(job)

    async def prune_replay_cache(self, now_ms: int) -> int:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM replay_cache WHERE expires_ms < ?", (now_ms,)).rowcount

        return await self._engine.write(job)


class SummaryStore(_Base):
    """Counts for status, health and metrics."""

    async def count_forums(self) -> int:
        return int(await self._engine.fetch_value("SELECT COUNT(*) FROM forums"))

    async def outbox_depth(self) -> int:
        return int(
            await self._engine.fetch_value(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('queued', 'sending')"
            )
        )

    async def schema_version(self) -> int:
        return int(await self._engine.fetch_value("SELECT MAX(version) FROM schema_migrations"))


class Storage(
    NodeStateStore, PeerStore, ReplayStore, SummaryStore, MemberStore, DeliveryStore, ForumStore
):
    def __init__(self, engine: SqliteEngine) -> None:
        self._engine = engine

    @classmethod
    async def open(
        cls, path: Path, config: StorageConfig, clock: Callable[[], int]
    ) -> Storage:
        return cls(await SqliteEngine.open(path, config, clock))

    @property
    def engine(self) -> SqliteEngine:
        return self._engine

    async def close(self) -> None:
        await self._engine.close()
