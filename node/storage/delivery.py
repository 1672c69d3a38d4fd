"""Storage for federation delivery: the outbox, per-peer delivery health, acks, replays.

The outbox holds one row per envelope to deliver. The row keeps the envelope's *draft*
(``{id, kind, body}``, canonical msgpack) rather than a signed envelope: a signature
carries ``ts``, and an envelope that waited out an outage longer than the skew window
would be refused, so delivery signs at send time and keeps the ``id`` (a receiver that
already has it answers ``envelope.replay``). Only drafts that must be signed by a key the
node no longer holds (a rotation announced with the old key) carry ``signed`` bytes.

Forum entries never enter the outbox: the sender reads them from the log starting at the
peer's acknowledged seq (``peer_acks``), so an outage costs no rows at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from .engine import SMALL_ROWS, SqliteEngine

BreakerState = Literal["closed", "open", "half_open"]
T = TypeVar("T")


@dataclass(frozen=True)
class PeerDelivery:
    """Delivery health of one destination (one ``peer_delivery`` row)."""

    peer: str
    breaker: BreakerState = "closed"
    failures: int = 0
    backoff_ms: int = 0
    next_attempt_ms: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    destination: str
    draft: bytes
    attempts: int
    state: str
    last_error: str | None
    created_ms: int


@dataclass(frozen=True)
class OutboxSummary:
    peer: str
    queued: int
    dead: int
    delivery: PeerDelivery


def _row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        r["id"], r["destination"], bytes(r["envelope"]), r["attempts"], r["state"],
        r["last_error"], r["created_ms"],
    )  # fmt: skip


def _delivery(r: sqlite3.Row) -> PeerDelivery:
    return PeerDelivery(
        r["peer"], r["breaker"], r["failures"], r["backoff_ms"], r["next_attempt_ms"],
        r["last_error"],
    )  # fmt: skip


@dataclass
class _DeliveryCache:
    """What every push round reads, kept in memory: a round that pushes one entry to a
    peer must not wait for three database reads (each a hop to a reader thread).

    Written through: each entry changes only after its write committed. Every write
    bumps ``gen`` before and after it, and a read stores what it found only if ``gen``
    did not move meanwhile, so a read racing a write is never cached (the same rule as
    the peer and session caches). Other processes write these tables only while the
    node is stopped (the data dir lock)."""

    gen: int = 0
    deliveries: dict[str, PeerDelivery] = field(default_factory=dict)
    acks: dict[tuple[str, str], int] = field(default_factory=dict)
    idle: set[str] = field(default_factory=set)  # destinations with no queued envelope


class DeliveryStore:
    # A mixin of ``Storage`` (store.py), which sets ``_engine``; not importing store.py
    # keeps the import one-way.
    _engine: SqliteEngine
    _delivery_cache: _DeliveryCache | None = None

    @property
    def _dc(self) -> _DeliveryCache:
        if self._delivery_cache is None:
            self._delivery_cache = _DeliveryCache()
        return self._delivery_cache

    async def _cached_write(
        self, write: Callable[[], Awaitable[T]], settle: Callable[[_DeliveryCache, bool], None]
    ) -> T:
        """Run ``write``, then ``settle(cache, committed)``; ``gen`` moves on both sides.
        ``settle`` runs even if the write failed: what it clears is read again."""
        c = self._dc
        c.gen += 1
        committed = False
        try:
            result = await write()
            committed = True
            return result
        finally:
            settle(c, committed)
            c.gen += 1

    def forget_delivery(self, peer: str) -> None:
        """Drop what is cached for ``peer`` (its rows were deleted: ``peer remove``)."""
        c = self._dc
        c.gen += 1
        c.deliveries.pop(peer, None)
        c.idle.discard(peer)
        for key in [k for k in c.acks if k[0] == peer]:
            del c.acks[key]

    # ------------------------------------------------------------------ outbox

    async def enqueue_drafts(self, rows: list[tuple[str, bytes]], now_ms: int) -> list[int]:
        """Queue ``(destination, draft)`` rows in one transaction; their ids, in order."""

        def job(conn: sqlite3.Connection) -> list[int]:
            ids = []
            for destination, draft in rows:
                cur = conn.execute(
                    "INSERT INTO outbox (destination, kind, envelope, next_attempt_ms,"
                    " created_ms) VALUES (?, 'envelope', ?, ?, ?)",
                    (destination, draft, now_ms, now_ms),
                )
                ids.append(int(cur.lastrowid or 0))
            return ids

        destinations = {d for d, _ in rows}
        return await self._cached_write(
            lambda: self._engine.write(job, small=len(rows) <= SMALL_ROWS),
            lambda c, _: c.idle.difference_update(destinations),
        )

    async def queued_outbox(self, destination: str, limit: int) -> list[OutboxRow]:
        c = self._dc
        if destination in c.idle:
            return []
        gen = c.gen
        rows = await self._engine.fetch_all(
            "SELECT * FROM outbox WHERE state = 'queued' AND destination = ? AND kind = 'envelope'"
            " ORDER BY id LIMIT ?",
            (destination, limit),
        )
        if not rows and gen == c.gen:
            c.idle.add(destination)
        return [_row(r) for r in rows]

    async def settle_outbox(
        self,
        delivered: list[int],
        dead: list[tuple[int, str]],
        retry: list[tuple[int, str]],
    ) -> None:
        """After one batch: drop delivered rows, dead-letter refused ones, count retries."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in delivered])
            conn.executemany(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?"
                " WHERE id = ?",
                [(err, i) for i, err in dead],
            )
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(err, i) for i, err in retry],
            )

        await self._engine.write(job, small=len(delivered) + len(dead) + len(retry) <= SMALL_ROWS)

    async def outbox_destinations(self) -> list[str]:
        rows = await self._engine.fetch_all(
            "SELECT DISTINCT destination FROM outbox WHERE state = 'queued'"
            " UNION SELECT peer FROM peer_delivery WHERE failures > 0"
        )
        return [r[0] for r in rows]

    async def outbox_summary(self) -> list[OutboxSummary]:
        counts = await self._engine.fetch_all(
            "SELECT destination, SUM(state = 'queued') AS queued, SUM(state = 'dead') AS dead"
            " FROM outbox GROUP BY destination"
        )
        states = {r["peer"]: _delivery(r) for r in await self._engine.fetch_all(
            "SELECT * FROM peer_delivery"
        )}  # fmt: skip
        by_peer = {r["destination"]: (int(r["queued"]), int(r["dead"])) for r in counts}
        return [
            OutboxSummary(p, *by_peer.get(p, (0, 0)), states.get(p, PeerDelivery(p)))
            for p in sorted(set(by_peer) | set(states))
        ]

    async def dead_letters(self, peer: str | None = None, limit: int = 100) -> list[OutboxRow]:
        where, params = ("AND destination = ?", (peer,)) if peer else ("", ())
        rows = await self._engine.fetch_all(
            f"SELECT * FROM outbox WHERE state = 'dead' {where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [_row(r) for r in rows]

    async def retry_outbox(self, peer: str | None, now_ms: int) -> int:
        """Requeue dead letters and clear backoff (the operator says: try again now)."""
        only = "" if peer is None else " AND destination = ?"
        only_peer = "" if peer is None else " WHERE peer = ?"
        params: tuple[str, ...] = () if peer is None else (peer,)

        def job(conn: sqlite3.Connection) -> int:
            n = conn.execute(
                "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_ms = ?"
                " WHERE state = 'dead'" + only,
                (now_ms, *params),
            ).rowcount
            conn.execute(
                "UPDATE peer_delivery SET breaker = 'closed', failures = 0, backoff_ms = 0,"
                " next_attempt_ms = 0, updated_ms = ?" + only_peer,
                (now_ms, *params),
            )
            return n

        def settle(c: _DeliveryCache, _: bool) -> None:
            if peer is None:
                c.deliveries.clear()
                c.idle.clear()
            else:
                c.deliveries.pop(peer, None)
                c.idle.discard(peer)

        return await self._cached_write(lambda: self._engine.write(job), settle)

    # ------------------------------------------------------------------ delivery health

    async def get_delivery(self, peer: str) -> PeerDelivery:
        c = self._dc
        found = c.deliveries.get(peer)
        if found is not None:
            return found
        gen = c.gen
        row = await self._engine.fetch_one("SELECT * FROM peer_delivery WHERE peer = ?", (peer,))
        found = PeerDelivery(peer) if row is None else _delivery(row)
        if gen == c.gen:
            c.deliveries[peer] = found
        return found

    async def put_delivery(self, state: PeerDelivery, now_ms: int) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO peer_delivery (peer, breaker, failures, backoff_ms,"
                " next_attempt_ms, last_error, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (peer) DO UPDATE SET breaker = excluded.breaker,"
                " failures = excluded.failures, backoff_ms = excluded.backoff_ms,"
                " next_attempt_ms = excluded.next_attempt_ms,"
                " last_error = excluded.last_error, updated_ms = excluded.updated_ms",
                (
                    state.peer, state.breaker, state.failures, state.backoff_ms,
                    state.next_attempt_ms, state.last_error, now_ms,
                ),
            )  # fmt: skip

        def settle(c: _DeliveryCache, committed: bool) -> None:
            if committed:
                c.deliveries[state.peer] = state
            else:
                c.deliveries.pop(state.peer, None)

        await self._cached_write(lambda: self._engine.write(job, small=True), settle)

    # ------------------------------------------------------------------ acks

    async def get_ack(self, peer: str, forum: str) -> int:
        c = self._dc
        found = c.acks.get((peer, forum))
        if found is not None:
            return found
        gen = c.gen
        value = await self._engine.fetch_value(
            "SELECT acked_seq FROM peer_acks WHERE peer = ? AND forum = ?", (peer, forum)
        )
        found = 0 if value is None else int(value)
        if gen == c.gen:
            c.acks[(peer, forum)] = found
        return found

    async def raise_acks(self, peer: str, acks: dict[str, int]) -> None:
        """Record acknowledged seqs; an ack never moves backwards (answers may cross)."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO peer_acks (peer, forum, acked_seq) VALUES (?, ?, ?)"
                " ON CONFLICT (peer, forum) DO UPDATE SET"
                " acked_seq = MAX(acked_seq, excluded.acked_seq)",
                [(peer, forum, seq) for forum, seq in acks.items()],
            )

        def settle(c: _DeliveryCache, committed: bool) -> None:
            for forum, seq in acks.items():
                known = c.acks.get((peer, forum))
                if known is None:
                    continue  # not cached: the row holds the larger of both, read it then
                if committed:
                    c.acks[(peer, forum)] = max(known, seq)
                else:
                    del c.acks[(peer, forum)]

        small = len(acks) <= SMALL_ROWS
        await self._cached_write(lambda: self._engine.write(job, small=small), settle)

    async def hub_forums(self, hub: str) -> list[str]:
        """Forums this node sequences: where catch-up after a restart starts."""
        rows = await self._engine.fetch_all("SELECT id FROM forums WHERE hub = ?", (hub,))
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ replay cache

    async def remember_envelopes(self, ids: list[tuple[bytes, str]], expires_ms: int) -> None:
        """Record the accepted envelope ids of one batch, ``(id, sender)``, in one job."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO replay_cache (id, peer, expires_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET expires_ms = MAX(expires_ms, excluded.expires_ms)",
                [(i, peer, expires_ms) for i, peer in ids],
            )

        await self._engine.write(job, small=len(ids) <= SMALL_ROWS)

    async def replay_ids(self, now_ms: int) -> dict[bytes, int]:
        """Ids still remembered (id -> expiry): the in-memory mirror after a restart."""
        rows = await self._engine.fetch_all(
            "SELECT id, expires_ms FROM replay_cache WHERE expires_ms >= ?", (now_ms,)
        )
        return {bytes(r[0]): int(r[1]) for r in rows}
