from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.config import StorageConfig
from node.storage import SchemaTooNewError, Storage, StorageError
from node.storage.engine import load_migrations

CFG = StorageConfig()


def clock() -> int:
    return 1_000


async def open_storage(path: Path) -> Storage:
    return await Storage.open(path, CFG, clock)


async def test_fresh_database_is_migrated(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "node.db")
    try:
        assert await storage.schema_version() == len(load_migrations())
        assert await storage.count_forums() == 0
        assert await storage.outbox_depth() == 0
    finally:
        await storage.close()
    conn = sqlite3.connect(tmp_path / "node.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for table in ("peers", "peer_keys", "entries", "outbox", "sessions", "replay_cache"):
        assert table in tables


async def test_reopening_does_not_reapply(tmp_path: Path) -> None:
    for _ in range(2):
        storage = await open_storage(tmp_path / "node.db")
        await storage.close()
    conn = sqlite3.connect(tmp_path / "node.db")
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(
        load_migrations()
    )


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "node.db")
    await storage.close()
    conn = sqlite3.connect(tmp_path / "node.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNewError, match="schema version 999.*upgrade PeerForum"):
        await open_storage(tmp_path / "node.db")


async def test_concurrent_writes_share_transactions(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "node.db")
    try:
        n = 2000
        results = await asyncio.gather(
            *(storage.remember_envelope(i.to_bytes(16, "big"), "p", 5) for i in range(n))
        )
        assert all(results)
        engine = storage.engine
        assert engine.jobs_committed == n
        # Group commit: far fewer transactions than jobs.
        assert engine.batches_committed < n / 10
        assert not await storage.remember_envelope((7).to_bytes(16, "big"), "p", 5)
        assert await storage.prune_replay_cache(10) == n
    finally:
        await storage.close()


async def test_failing_job_is_rolled_back_alone(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "node.db")
    engine = storage.engine

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO node_state (key, value) VALUES ('half', x'00')")
        raise ValueError("boom")

    try:
        outcome = await asyncio.gather(
            storage.set_state("a", b"1"), engine.write(bad), storage.set_state("b", b"2"),
            return_exceptions=True,
        )  # fmt: skip
        assert isinstance(outcome[1], ValueError)
        assert await storage.get_state("a") == b"1"
        assert await storage.get_state("b") == b"2"
        assert await storage.get_state("half") is None
    finally:
        await storage.close()


async def test_small_batches_commit_on_the_loop_thread_others_on_the_writer(
    tmp_path: Path,
) -> None:
    import threading

    storage = await open_storage(tmp_path / "node.db")
    engine = storage.engine
    threads: dict[str, int] = {}

    def job(name: str, fail: bool = False) -> Any:
        def run(conn: sqlite3.Connection) -> None:
            threads[name] = threading.get_ident()
            conn.execute("INSERT INTO node_state (key, value) VALUES (?, x'01')", (name,))
            if fail:
                raise ValueError("boom")

        return run

    try:
        loop_thread = threading.get_ident()
        await engine.write(job("small"), small=True)
        await engine.write(job("large"))
        # A small job queued with a large one goes to the writer thread with it.
        await asyncio.gather(engine.write(job("s2"), small=True), engine.write(job("l2")))
        assert threads["small"] == loop_thread
        assert threads["large"] != loop_thread and threads["s2"] == threads["l2"]
        # On the loop thread too, a failing job is rolled back alone.
        outcome = await asyncio.gather(
            engine.write(job("s3"), small=True), engine.write(job("bad", True), small=True),
            return_exceptions=True,
        )  # fmt: skip
        assert outcome[0] is None and isinstance(outcome[1], ValueError)
        # A WAL truncation is queued like a write and runs by itself on the writer thread,
        # never beside a commit on the loop thread.
        done = await asyncio.gather(
            engine.write(job("s4"), small=True), engine.truncate_wal(),
            engine.write(job("s5"), small=True),
        )  # fmt: skip
        assert done[1] is True
        for key in ("small", "large", "s2", "l2", "s3", "s4", "s5"):
            assert await storage.get_state(key) == b"\x01", key
        assert await storage.get_state("bad") is None
    finally:
        await storage.close()


async def test_close_commits_queued_writes_then_refuses(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "node.db")
    pending = asyncio.ensure_future(storage.set_state("k", b"v"))
    await asyncio.sleep(0)
    await storage.close()
    await pending
    with pytest.raises(StorageError):
        await storage.set_state("k", b"w")
    again = await open_storage(tmp_path / "node.db")
    try:
        assert await again.get_state("k") == b"v"
    finally:
        await again.close()


async def test_peer_offer_pin_and_status(tmp_path: Path) -> None:
    storage = await open_storage(tmp_path / "node.db")
    try:
        await storage.offer_peer("b.example", "https://b.example", b"desc1", "pending", 1)
        peer = await storage.get_peer("b.example")
        assert peer is not None and peer.status == "pending" and peer.keys == ()
        await storage.pin_peer("b.example", b"desc1", [("k1", b"1" * 32, None)], 2)
        await storage.pin_peer("b.example", b"desc2", [("k2", b"2" * 32, None)], 3)
        peer = await storage.get_peer("b.example")
        assert peer is not None and peer.status == "approved" and peer.offered is None
        expiry = {k.kid: k.expired_ms for k in peer.pinned_keys}
        assert expiry == {"k2": None, "k1": 3}  # a key the new descriptor dropped retires
        assert await storage.set_peer_status("b.example", "blocked", 4)
        assert not await storage.set_peer_status("nobody.example", "blocked", 4)
        assert (await storage.count_peers())["blocked"] == 1
        with pytest.raises(StorageError):
            await storage.pin_peer("nobody.example", b"d", [], 5)
    finally:
        await storage.close()
