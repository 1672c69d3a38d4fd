"""SQLite engine: one writer with group commit, a few readers, numbered migrations.

Writes are *jobs*: plain functions ``job(conn) -> T`` over a ``sqlite3.Connection`` that
run on one dedicated writer thread. The writer loop takes every job waiting in the queue
(up to ``max_batch``), runs them inside ONE transaction — each in its own SAVEPOINT, so a
job that raises is rolled back alone and only its caller sees the error — and commits
once. Under load many jobs share one fsync: that is what lets a hub sequence thousands
of entries per second. A whole batch crosses the thread boundary once; aiosqlite would
hop threads per statement, which is why the writer uses sqlite3 directly while readers
use aiosqlite.

Readers are separate connections (WAL lets them read while the writer writes) and only
ever see committed data.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from ..config import StorageConfig

T = TypeVar("T")
WriteJob = Callable[[sqlite3.Connection], T]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class StorageError(Exception):
    """The database cannot be used (wrong schema, unreadable, closed)."""


class SchemaTooNewError(StorageError):
    """The database was written by a newer PeerForum than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if m is None:
            raise StorageError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    # Gaps or duplicates mean a broken install; refusing here beats a half-migrated db.
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StorageError("migrations must be numbered 0001, 0002, ... without gaps")
    return found


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], now_ms: int) -> list[int]:
    """Apply the migrations the database lacks, each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
    )
    current = schema_version(conn)
    known = migrations[-1].version if migrations else 0
    if current > known:
        raise SchemaTooNewError(
            f"the database has schema version {current} but this PeerForum knows only up to "
            f"{known}: upgrade PeerForum, or restore a backup made by this version"
        )
    applied: list[int] = []
    for m in migrations:
        if m.version <= current:
            continue
        script = (
            f"BEGIN IMMEDIATE;\n{m.sql}\n"
            f"INSERT INTO schema_migrations (version, name, applied_ms) "
            f"VALUES ({m.version}, '{m.name}', {int(now_ms)});\nCOMMIT;"
        )
        try:
            conn.executescript(script)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc
        applied.append(m.version)
    return applied


@dataclass
class _Job:
    fn: WriteJob[Any]
    future: asyncio.Future[Any]
    small: bool = False  # a few rows: may commit on the event loop's thread (see write)
    alone: bool = False  # runs by itself, outside any transaction (a checkpoint)


# A batch of only small jobs, this many at most, commits on the event loop's thread: a
# WAL commit at synchronous=NORMAL is ~0.1 ms, the hop to the writer thread and back
# 0.2-1 ms of wake-ups on a small VM — paid twice on every federated entry's way.
INLINE_JOBS: Final = 32
SMALL_ROWS: Final = 64  # rows a job may write and still call itself small


_STOP = object()


class SqliteEngine:
    """Owns the connections. Use ``await SqliteEngine.open(...)`` and ``await close()``."""

    def __init__(self, path: Path, config: StorageConfig, clock: Callable[[], int]) -> None:
        self.path = path
        self.config = config
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pf-db-writer")
        self._writer: sqlite3.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        # Observed by /metrics and by tests of group commit.
        self.batches_committed = 0
        self.jobs_committed = 0

    @classmethod
    async def open(
        cls,
        path: Path,
        config: StorageConfig,
        clock: Callable[[], int],
        migrations: Sequence[Migration] | None = None,
    ) -> SqliteEngine:
        engine = cls(path, config, clock)
        try:
            await engine._start(load_migrations() if migrations is None else migrations)
        except BaseException:
            await engine.close()
            raise
        return engine

    async def _start(self, migrations: Sequence[Migration]) -> None:
        loop = asyncio.get_running_loop()
        self._writer = await loop.run_in_executor(self._executor, self._connect_writer)
        await loop.run_in_executor(
            self._executor, migrate, self._writer, migrations, self._clock()
        )
        for _ in range(self.config.read_connections):
            reader = await aiosqlite.connect(self.path, isolation_level=None)
            reader.row_factory = sqlite3.Row
            await reader.execute(f"PRAGMA busy_timeout = {int(self.config.busy_timeout_ms)}")
            await reader.execute("PRAGMA query_only = ON")
            self._readers.append(reader)
        self._loop_task = asyncio.create_task(self._write_loop(), name="pf-db-writer")

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot open the database ({exc})") from exc
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.config.busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StorageError(f"{self.path}: cannot switch the database to WAL mode")
            # NORMAL in WAL mode: a power loss may drop the last commits, never corrupt.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # Deleted rows are overwritten, not left in free pages: content whose retention
            # has passed (protocol §6.9) must leave the file, not only the table.
            conn.execute("PRAGMA secure_delete = ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StorageError(f"{self.path}: not a usable SQLite database ({exc})") from exc
        return conn

    # ------------------------------------------------------------------ writes

    async def write(self, job: WriteJob[T], *, small: bool = False) -> T:
        """Run ``job`` in the next group-commit transaction; return its result once
        committed. ``small``: the job writes a few rows (no scans, no large deletes), so
        a batch of such jobs may commit without leaving the event loop's thread."""
        if self._closed:
            raise StorageError("storage is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(job, future, small))
        return await future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        carried: Any = None  # a job taken from the queue that must wait for the next round
        while not stopping:
            first = carried if carried is not None else await self._queue.get()
            carried = None
            if first is _STOP:
                break
            batch: list[_Job] = [first]
            while len(batch) < self.config.max_batch and not first.alone:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is _STOP:
                    stopping = True  # commit what was queued before close(), then stop
                    break
                if item.alone:
                    carried = item  # after this batch, by itself
                    break
                batch.append(item)
            if first.alone:
                outcomes = [await self._run_alone(loop, first.fn)]
            elif len(batch) <= INLINE_JOBS and all(j.small for j in batch):
                outcomes = self._commit_batch([j.fn for j in batch])
            else:
                outcomes = await loop.run_in_executor(
                    self._executor, self._commit_batch, [j.fn for j in batch]
                )
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():  # the caller was cancelled; the write still happened
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)

    def _commit_batch(self, fns: list[WriteJob[Any]]) -> list[tuple[bool, Any]]:
        conn = self._writer
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn in fns:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, fn(conn)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((False, exc))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = StorageError(f"write transaction failed: {exc}")
            err.__cause__ = exc
            return [(False, err)] * len(fns)
        self.batches_committed += 1
        self.jobs_committed += len(fns)
        return outcomes

    async def _run_alone(
        self, loop: asyncio.AbstractEventLoop, fn: WriteJob[Any]
    ) -> tuple[bool, Any]:
        conn = self._writer
        assert conn is not None
        try:
            return True, await loop.run_in_executor(self._executor, fn, conn)
        except Exception as exc:
            return False, exc

    async def truncate_wal(self) -> bool:
        """Checkpoint and truncate the write-ahead log (on the writer thread, between
        transactions: the write loop runs it by itself). The WAL keeps old page images —
        deleted content included — until it is overwritten; truncating drops them.
        False if a reader kept it busy."""
        if self._closed or self._writer is None:
            raise StorageError("storage is closed")

        def run(conn: sqlite3.Connection) -> bool:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            return int(busy) == 0

        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(run, future, alone=True))
        return await future

    # ------------------------------------------------------------------ reads

    def _reader(self) -> aiosqlite.Connection:
        if self._closed or not self._readers:
            raise StorageError("storage is closed")
        self._next_reader = (self._next_reader + 1) % len(self._readers)
        return self._readers[self._next_reader]

    # One hop to the reader's thread per query: ``execute_fetchall`` runs the statement and
    # fetches in one call, where a cursor (execute, fetch, close) crosses threads three
    # times. A hop costs ~0.2-1 ms of wake-up latency, more than most of our queries.

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._reader().execute_fetchall(sql, params))

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row (queries here select by key or carry their own LIMIT)."""
        rows = await self._reader().execute_fetchall(sql, params)
        for row in rows:
            return row
        return None

    async def fetch_value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Commit what is queued, then close every connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._loop_task is not None:
            self._queue.put_nowait(_STOP)
            await self._loop_task
        for reader in self._readers:
            await reader.close()
        self._readers.clear()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, writer.close)
        self._executor.shutdown(wait=True)
