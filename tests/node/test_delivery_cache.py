"""The delivery store's memory (node/storage/delivery.py): delivery state, acks and empty
outboxes are cached, written through. Every answer must equal what sqlite holds — after
writes, failed writes, races between a read and a write, and ``peer remove``.

Races are forced, not hoped for: ``hold`` parks one engine call (before it runs, or after
it ran but before its caller resumes) until the test lets it go.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from node.config import StorageConfig
from node.peering import remove_peer
from node.storage import Storage, StorageError
from node.storage.delivery import PeerDelivery
from node.storage.engine import SqliteEngine

P, Q = "b.example", "c.example"
FORUM, OTHER = "!f1", "!f2"


def clock() -> int:
    return 1_000


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "node.db"


@pytest.fixture
async def storage(path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(path, StorageConfig(), clock)
    yield s
    await s.close()


# ---------------------------------------------------------------- the database, read directly


def _query(path: Path, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def db_delivery(path: Path, peer: str) -> PeerDelivery:
    rows = _query(path, "SELECT * FROM peer_delivery WHERE peer = ?", (peer,))
    if not rows:
        return PeerDelivery(peer)
    r = rows[0]
    return PeerDelivery(
        peer, r["breaker"], r["failures"], r["backoff_ms"], r["next_attempt_ms"], r["last_error"]
    )


def db_ack(path: Path, peer: str, forum: str) -> int:
    rows = _query(path, "SELECT acked_seq FROM peer_acks WHERE peer = ? AND forum = ?",
                  (peer, forum))  # fmt: skip
    return int(rows[0][0]) if rows else 0


def db_queued(path: Path, destination: str) -> list[int]:
    rows = _query(
        path,
        "SELECT id FROM outbox WHERE destination = ? AND state = 'queued' AND kind = 'envelope'"
        " ORDER BY id",
        (destination,),
    )
    return [r[0] for r in rows]


async def queued_ids(storage: Storage, destination: str) -> list[int]:
    return [r.id for r in await storage.queued_outbox(destination, 100)]


# ---------------------------------------------------------------- forcing interleavings


def hold(
    monkeypatch: pytest.MonkeyPatch, engine: SqliteEngine, name: str, *, before: bool
) -> tuple[asyncio.Event, asyncio.Event]:
    """Park the next call of ``engine.<name>``: ``before`` it runs (a write not committed
    yet), or after it ran (a read that saw the database before a write, answered after).
    Returns (parked, release); later calls pass straight through."""
    real: Callable[..., Any] = getattr(engine, name)
    parked, release = asyncio.Event(), asyncio.Event()
    used = False

    async def held(*args: Any, **kwargs: Any) -> Any:
        nonlocal used
        if used:
            return await real(*args, **kwargs)
        used = True
        if before:
            parked.set()
            await release.wait()
            return await real(*args, **kwargs)
        result = await real(*args, **kwargs)
        parked.set()
        await release.wait()
        return result

    monkeypatch.setattr(engine, name, held)
    return parked, release


# ---------------------------------------------------------------- values equal the database


async def test_what_is_read_back_equals_the_database(storage: Storage, path: Path) -> None:
    open_p = PeerDelivery(P, "open", 3, 4_000, 9_000, "http.503")
    await storage.put_delivery(open_p, 1)
    await storage.raise_acks(P, {FORUM: 7, OTHER: 2})
    ids = await storage.enqueue_drafts([(P, b"d1"), (Q, b"d2"), (P, b"d3")], 1)
    for _ in range(2):  # the first read fills the cache, the second is served from it
        for peer in (P, Q):
            assert await storage.get_delivery(peer) == db_delivery(path, peer)
            assert await queued_ids(storage, peer) == db_queued(path, peer)
            for forum in (FORUM, OTHER):
                assert await storage.get_ack(peer, forum) == db_ack(path, peer, forum)
    assert await storage.get_delivery(P) == open_p
    assert await queued_ids(storage, P) == [ids[0], ids[2]]
    assert await storage.get_ack(P, FORUM) == 7 and await storage.get_ack(Q, FORUM) == 0

    fresh = await Storage.open(path, StorageConfig(), clock)  # no cache at all
    try:
        for peer in (P, Q):
            assert await fresh.get_delivery(peer) == await storage.get_delivery(peer)
            assert await queued_ids(fresh, peer) == await queued_ids(storage, peer)
            for forum in (FORUM, OTHER):
                assert await fresh.get_ack(peer, forum) == await storage.get_ack(peer, forum)
    finally:
        await fresh.close()


async def test_a_put_delivery_is_read_back_without_the_database(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await storage.get_delivery(P) == PeerDelivery(P)  # cached: no row yet
    state = PeerDelivery(P, "half_open", 5, 60_000, 61_000, "net.timeout")
    await storage.put_delivery(state, 2)
    assert db_delivery(path, P) == state

    async def no_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read the database for a cached value")

    monkeypatch.setattr(storage.engine, "fetch_one", no_reads)
    monkeypatch.setattr(storage.engine, "fetch_all", no_reads)
    assert await storage.get_delivery(P) == state
    later = PeerDelivery(P, "closed")
    await storage.put_delivery(later, 3)  # written through, so still no read
    assert await storage.get_delivery(P) == later == db_delivery(path, P)


# ---------------------------------------------------------------- acks


async def test_an_ack_never_moves_backwards(storage: Storage, path: Path) -> None:
    assert await storage.get_ack(P, FORUM) == 0  # cached as 0
    await storage.raise_acks(P, {FORUM: 7})
    assert await storage.get_ack(P, FORUM) == 7 == db_ack(path, P, FORUM)
    await storage.raise_acks(P, {FORUM: 3})  # an older answer arriving late
    assert await storage.get_ack(P, FORUM) == 7 == db_ack(path, P, FORUM)
    await storage.raise_acks(P, {FORUM: 9, OTHER: 4})
    assert await storage.get_ack(P, FORUM) == 9 == db_ack(path, P, FORUM)
    # OTHER was never read: the raise does not invent a cache entry, the next get reads it.
    assert await storage.get_ack(P, OTHER) == 4 == db_ack(path, P, OTHER)
    # Crossing answers, all at once: the highest wins, in memory and on disk.
    await asyncio.gather(*(storage.raise_acks(P, {FORUM: s}) for s in (12, 10, 15, 11)))
    assert await storage.get_ack(P, FORUM) == 15 == db_ack(path, P, FORUM)


async def test_an_ack_read_racing_its_raise_is_not_kept(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parked, release = hold(monkeypatch, storage.engine, "fetch_one", before=False)
    read = asyncio.create_task(storage.get_ack(P, FORUM))
    await asyncio.wait_for(parked.wait(), 5)  # the read saw no row...
    await storage.raise_acks(P, {FORUM: 5})  # ...then the raise committed
    release.set()
    assert await read == 0  # an answer from before the raise, and not cached
    assert await storage.get_ack(P, FORUM) == 5 == db_ack(path, P, FORUM)


async def test_an_ack_read_while_its_raise_is_pending_is_corrected(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parked, release = hold(monkeypatch, storage.engine, "write", before=True)
    raising = asyncio.create_task(storage.raise_acks(P, {FORUM: 5}))
    await asyncio.wait_for(parked.wait(), 5)
    assert await storage.get_ack(P, FORUM) == 0  # not committed yet: cached as 0
    release.set()
    await raising
    assert await storage.get_ack(P, FORUM) == 5 == db_ack(path, P, FORUM)


# ---------------------------------------------------------------- delivery state


async def test_a_delivery_read_racing_a_put_is_not_kept(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parked, release = hold(monkeypatch, storage.engine, "fetch_one", before=False)
    read = asyncio.create_task(storage.get_delivery(P))
    await asyncio.wait_for(parked.wait(), 5)
    state = PeerDelivery(P, "open", 1, 1_000, 2_000, "http.500")
    await storage.put_delivery(state, 1)
    release.set()
    assert await read == PeerDelivery(P)
    assert await storage.get_delivery(P) == state == db_delivery(path, P)


async def test_retry_outbox_resets_a_cached_backoff(storage: Storage, path: Path) -> None:
    for peer in (P, Q):
        await storage.put_delivery(PeerDelivery(peer, "open", 4, 8_000, 9_000, "http.503"), 1)
        assert (await storage.get_delivery(peer)).breaker == "open"  # cached
    await storage.retry_outbox(P, 5)  # one peer
    reset = await storage.get_delivery(P)
    assert (reset.breaker, reset.failures, reset.backoff_ms, reset.next_attempt_ms) == (
        "closed", 0, 0, 0,
    )  # fmt: skip
    assert reset == db_delivery(path, P)
    assert (await storage.get_delivery(Q)).breaker == "open"  # the other one untouched
    assert await storage.get_delivery(Q) == db_delivery(path, Q)

    await storage.put_delivery(PeerDelivery(P, "half_open", 1, 1_000, 2_000), 6)
    assert (await storage.get_delivery(P)).breaker == "half_open"
    await storage.retry_outbox(None, 7)  # every peer
    for peer in (P, Q):
        state = await storage.get_delivery(peer)
        assert state.breaker == "closed" and state.failures == 0
        assert state == db_delivery(path, peer)


# ---------------------------------------------------------------- empty outboxes


async def test_an_idle_outbox_sees_what_is_enqueued_later(storage: Storage, path: Path) -> None:
    assert await storage.queued_outbox(P, 10) == []  # marked idle
    assert await storage.queued_outbox(P, 10) == []  # from memory
    ids = await storage.enqueue_drafts([(P, b"d1"), (P, b"d2")], 1)
    assert await queued_ids(storage, P) == ids == db_queued(path, P)
    rows = await storage.queued_outbox(P, 10)
    assert [r.draft for r in rows] == [b"d1", b"d2"]
    # Delivered: the outbox empties, is marked idle again, and wakes on the next enqueue.
    await storage.settle_outbox(ids, [], [])
    assert await storage.queued_outbox(P, 10) == []
    [again] = await storage.enqueue_drafts([(P, b"d3")], 2)
    assert await queued_ids(storage, P) == [again]


async def test_retry_outbox_wakes_an_idle_outbox(storage: Storage, path: Path) -> None:
    for peer in (P, Q):
        ids = await storage.enqueue_drafts([(peer, b"x")], 1)
        await storage.settle_outbox([], [(ids[0], "rules.refused")], [])  # dead-lettered
        assert await storage.queued_outbox(peer, 10) == []  # marked idle
    await storage.retry_outbox(P, 2)
    assert await queued_ids(storage, P) == db_queued(path, P) != []
    assert await storage.queued_outbox(Q, 10) == []
    await storage.retry_outbox(None, 3)
    assert await queued_ids(storage, Q) == db_queued(path, Q) != []


async def test_an_outbox_read_racing_an_enqueue_never_hides_the_row(
    storage: Storage, path: Path
) -> None:
    for delay in range(6):
        for marked in (False, True):
            dest = f"d{delay}-{marked}.example"
            if marked:
                assert await storage.queued_outbox(dest, 10) == []

            async def enqueue_after(d: str = dest, n: int = delay) -> list[int]:
                for _ in range(n):
                    await asyncio.sleep(0)
                return await storage.enqueue_drafts([(d, b"x")], 1)

            first, ids = await asyncio.gather(storage.queued_outbox(dest, 10), enqueue_after())
            assert [r.id for r in first] in ([], ids)
            assert await queued_ids(storage, dest) == ids == db_queued(path, dest)


async def test_an_empty_read_answered_after_an_enqueue_is_not_kept(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parked, release = hold(monkeypatch, storage.engine, "fetch_all", before=False)
    read = asyncio.create_task(storage.queued_outbox(P, 10))
    await asyncio.wait_for(parked.wait(), 5)  # the read found nothing...
    ids = await storage.enqueue_drafts([(P, b"d")], 1)  # ...then a row committed
    release.set()
    assert await read == []
    assert await queued_ids(storage, P) == ids == db_queued(path, P)


async def test_an_empty_read_while_an_enqueue_is_pending_is_corrected(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parked, release = hold(monkeypatch, storage.engine, "write", before=True)
    enqueue = asyncio.create_task(storage.enqueue_drafts([(P, b"d")], 1))
    await asyncio.wait_for(parked.wait(), 5)
    assert await storage.queued_outbox(P, 10) == []  # not committed: may be marked idle
    release.set()
    ids = await enqueue
    assert await queued_ids(storage, P) == ids == db_queued(path, P)


# ---------------------------------------------------------------- peer remove


async def test_a_removed_peer_comes_back_from_zero(storage: Storage, path: Path) -> None:
    await storage.offer_peer(P, f"https://{P}", b"desc", "pending", 1)
    await storage.put_delivery(PeerDelivery(P, "open", 6, 30_000, 40_000, "http.503"), 1)
    await storage.raise_acks(P, {FORUM: 42})
    await storage.enqueue_drafts([(P, b"d")], 1)
    assert await storage.get_ack(P, FORUM) == 42  # all cached
    assert (await storage.get_delivery(P)).failures == 6
    assert len(await storage.queued_outbox(P, 10)) == 1
    await storage.raise_acks(Q, {FORUM: 3})
    assert await storage.get_ack(Q, FORUM) == 3

    assert await remove_peer(storage, P) == 1
    assert await storage.get_peer(P) is None
    await storage.offer_peer(P, f"https://{P}", b"desc", "pending", 2)  # added again
    assert await storage.get_ack(P, FORUM) == 0 == db_ack(path, P, FORUM)
    assert await storage.get_delivery(P) == PeerDelivery(P) == db_delivery(path, P)
    assert await storage.queued_outbox(P, 10) == []
    ids = await storage.enqueue_drafts([(P, b"new")], 3)
    assert await queued_ids(storage, P) == ids
    assert await storage.get_ack(Q, FORUM) == 3  # another peer keeps its ack


# ---------------------------------------------------------------- failed writes


async def test_a_failed_write_leaves_nothing_uncommitted_in_memory(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = PeerDelivery(P, "open", 2, 2_000, 3_000, "http.503")
    await storage.put_delivery(kept, 1)
    await storage.raise_acks(P, {FORUM: 5})
    assert await storage.get_ack(P, FORUM) == 5 and await storage.get_delivery(P) == kept

    async def broken(job: Any, **kwargs: Any) -> Any:
        raise StorageError("disk full")

    monkeypatch.setattr(storage.engine, "write", broken)
    with pytest.raises(StorageError):
        await storage.raise_acks(P, {FORUM: 9})
    with pytest.raises(StorageError):
        await storage.put_delivery(PeerDelivery(P, "closed"), 2)
    with pytest.raises(StorageError):
        await storage.retry_outbox(P, 2)
    monkeypatch.undo()
    assert await storage.get_ack(P, FORUM) == 5 == db_ack(path, P, FORUM)
    assert await storage.get_delivery(P) == kept == db_delivery(path, P)


async def test_a_job_refused_by_sqlite_leaves_the_cache_true(storage: Storage, path: Path) -> None:
    kept = PeerDelivery(P, "open", 2, 2_000, 3_000)
    await storage.put_delivery(kept, 1)
    assert await storage.get_delivery(P) == kept
    bogus = PeerDelivery(P, "ajar", 0)  # type: ignore[arg-type]  # breaker CHECK refuses it
    with pytest.raises(sqlite3.IntegrityError):
        await storage.put_delivery(bogus, 2)
    assert await storage.get_delivery(P) == kept == db_delivery(path, P)


async def test_a_write_that_committed_but_raised_is_read_again(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller saw an error (cancelled, say) but the job committed: memory must not
    keep the old value."""
    assert await storage.get_ack(P, FORUM) == 0
    assert await storage.get_delivery(P) == PeerDelivery(P)
    real = storage.engine.write

    async def committed_then_failed(job: Any, **kwargs: Any) -> Any:
        await real(job, **kwargs)
        raise StorageError("lost the answer")

    monkeypatch.setattr(storage.engine, "write", committed_then_failed)
    with pytest.raises(StorageError):
        await storage.raise_acks(P, {FORUM: 9})
    state = PeerDelivery(P, "open", 1, 1_000, 2_000)
    with pytest.raises(StorageError):
        await storage.put_delivery(state, 2)
    monkeypatch.undo()
    assert await storage.get_ack(P, FORUM) == 9 == db_ack(path, P, FORUM)
    assert await storage.get_delivery(P) == state == db_delivery(path, P)


@pytest.mark.parametrize("committed", [False, True])
async def test_a_cancelled_put_is_read_again(
    storage: Storage, path: Path, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    """Cancelled before its job ran, or after it committed: memory follows the database."""
    assert await storage.get_delivery(P) == PeerDelivery(P)
    parked, _ = hold(monkeypatch, storage.engine, "write", before=not committed)
    state = PeerDelivery(P, "open", 1, 1_000, 2_000)
    put = asyncio.create_task(storage.put_delivery(state, 1))
    await asyncio.wait_for(parked.wait(), 5)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert await storage.get_delivery(P) == (state if committed else PeerDelivery(P))
    assert await storage.get_delivery(P) == db_delivery(path, P)


async def test_writes_on_a_closed_storage_fail_and_a_reopen_reads_the_database(
    path: Path,
) -> None:
    storage = await Storage.open(path, StorageConfig(), clock)
    await storage.raise_acks(P, {FORUM: 4})
    assert await storage.get_ack(P, FORUM) == 4
    await storage.close()
    with pytest.raises(StorageError):
        await storage.raise_acks(P, {FORUM: 8})
    again = await Storage.open(path, StorageConfig(), clock)
    try:
        assert await again.get_ack(P, FORUM) == 4
    finally:
        await again.close()


# ---------------------------------------------------------------- engine reads


async def test_fetch_one_and_fetch_value_without_a_row(storage: Storage) -> None:
    engine = storage.engine
    assert await engine.fetch_one("SELECT * FROM peers WHERE name = ?", ("nobody",)) is None
    assert await engine.fetch_value("SELECT name FROM peers WHERE name = ?", ("nobody",)) is None
    assert await engine.fetch_all("SELECT * FROM peers") == []
    row = await engine.fetch_one("SELECT 1 AS n UNION ALL SELECT 2 ORDER BY n")
    assert row is not None and row["n"] == 1  # the first row
    assert [r[0] for r in await engine.fetch_all("SELECT 2 UNION ALL SELECT 1 ORDER BY 1")] == [
        1, 2,
    ]  # fmt: skip
