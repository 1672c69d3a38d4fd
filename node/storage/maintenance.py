"""Database maintenance for operators: status, migration, snapshots, health queries.

Everything here runs on its own plain ``sqlite3`` connection, never on the engine's
writer or readers: these are slow, rare operations (an integrity check reads every page,
a snapshot copies the file), and WAL lets a separate reader take a consistent snapshot
while the node keeps committing. The same functions serve a running node (called in a
worker thread by node/routes/ops_admin.py) and a stopped one (called by the CLI), so
both paths report exactly the same thing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine import Migration, SchemaTooNewError, StorageError, load_migrations, migrate

# The integrity check stops after this many problems: enough to tell the operator it is
# broken and where, without pages of output.
_MAX_INTEGRITY_ERRORS = 20


@dataclass(frozen=True)
class DbStatus:
    path: str
    exists: bool
    schema_version: int
    latest_version: int
    applied: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)  # ["ok"] when sound
    size_bytes: int = 0
    wal_bytes: int = 0
    page_size: int = 0
    page_count: int = 0
    freelist_count: int = 0

    @property
    def newer(self) -> bool:
        return self.schema_version > self.latest_version

    @property
    def integrity_ok(self) -> bool:
        return self.integrity == ["ok"]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "schema_version": self.schema_version,
            "latest_version": self.latest_version,
            "newer": self.newer,
            "applied": self.applied,
            "pending": self.pending,
            "integrity": (
                "ok" if self.integrity_ok else self.integrity if self.exists else "no database"
            ),
            "size_bytes": self.size_bytes,
            "wal_bytes": self.wal_bytes,
            "page_size": self.page_size,
            "page_count": self.page_count,
            "freelist_count": self.freelist_count,
        }


def open_readonly(path: Path, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``): a diagnosis must never create or change a db."""
    if not path.exists():
        raise StorageError(f"{path}: no database yet (it is created when the node first serves)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a usable SQLite database ({exc})") from exc
    conn.row_factory = sqlite3.Row
    return conn


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _applied(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if has_table is None:
        return []
    rows = conn.execute(
        "SELECT version, name, applied_ms FROM schema_migrations ORDER BY version"
    ).fetchall()
    return [{"version": r[0], "name": r[1], "applied_ms": r[2]} for r in rows]


def integrity_check(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(f"PRAGMA integrity_check({_MAX_INTEGRITY_ERRORS})").fetchall()
    return [str(r[0]) for r in rows]


def db_status(
    path: Path, migrations: Sequence[Migration] | None = None, check_integrity: bool = True
) -> DbStatus:
    known = load_migrations() if migrations is None else list(migrations)
    latest = known[-1].version if known else 0
    if not path.exists():
        pending = [{"version": m.version, "name": m.name} for m in known]
        return DbStatus(str(path), False, 0, latest, pending=pending)
    conn = open_readonly(path)
    try:
        applied = _applied(conn)
        version = max((a["version"] for a in applied), default=0)
        pragma = {
            p: int(conn.execute(f"PRAGMA {p}").fetchone()[0])
            for p in ("page_size", "page_count", "freelist_count")
        }
        integrity = integrity_check(conn) if check_integrity else ["ok"]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: cannot read the database ({exc})") from exc
    finally:
        conn.close()
    return DbStatus(
        path=str(path),
        exists=True,
        schema_version=version,
        latest_version=latest,
        applied=applied,
        pending=[{"version": m.version, "name": m.name} for m in known if m.version > version],
        integrity=integrity,
        size_bytes=_file_size(path),
        wal_bytes=_file_size(path.with_name(path.name + "-wal")),
        **pragma,
    )


def apply_migrations(path: Path, now_ms: int, busy_timeout_ms: int = 5000) -> list[int]:
    """Apply pending migrations on a connection of our own.

    Safe next to a running node: each migration is its own ``BEGIN IMMEDIATE``
    transaction, so SQLite makes the node's writer wait (busy timeout) rather than see a
    half-migrated schema. Raises SchemaTooNewError for a database from a newer PeerForum.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open the database ({exc})") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")  # what the node would set; persistent
        return migrate(conn, load_migrations(), now_ms)
    except SchemaTooNewError:
        raise
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: cannot migrate ({exc})") from exc
    finally:
        conn.close()


def snapshot(source: Path, dest: Path) -> int:
    """Copy a consistent snapshot of ``source`` into the new file ``dest`` (mode 0600).

    The backup API copies every page in one step inside one read transaction: in WAL
    mode that read sees one committed state and never blocks the writer. (Stepping page
    by page would restart whenever another connection commits, possibly forever on a
    busy node.) Returns the snapshot's schema version.
    """
    # Create the file ourselves first so it is 0600 from its first byte; sqlite would
    # create it with the umask's mode.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = open_readonly(source)
    try:
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst)
            # A self-contained file: a restored node must not need a -wal beside it.
            dst.execute("PRAGMA journal_mode = DELETE")
            version = _applied(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{source}: snapshot failed ({exc})") from exc
    finally:
        src.close()
    return max((a["version"] for a in version), default=0)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- health reads


@dataclass(frozen=True)
class PeerTarget:
    name: str
    url: str
    status: str  # approved or key_changed: the peers we federate with
    pinned_kids: frozenset[str]  # current pinned keys


@dataclass(frozen=True)
class PeerDelivery:
    peer: str
    queued: int
    dead: int
    breaker: str
    failures: int
    last_error: str | None
    next_attempt_ms: int


def federating_peers(conn: sqlite3.Connection) -> list[PeerTarget]:
    rows = conn.execute(
        "SELECT name, url, status FROM peers WHERE status IN ('approved', 'key_changed')"
        " ORDER BY name"
    ).fetchall()
    keys: dict[str, set[str]] = {}
    for peer, kid in conn.execute(
        "SELECT peer, kid FROM peer_keys WHERE pinned = 1 AND expired_ms IS NULL"
    ).fetchall():
        keys.setdefault(peer, set()).add(kid)
    return [PeerTarget(r[0], r[1], r[2], frozenset(keys.get(r[0], ()))) for r in rows]


def delivery_health(conn: sqlite3.Connection) -> list[PeerDelivery]:
    """Outbox depth and dead letters per destination, with its breaker state."""
    counts: dict[str, dict[str, int]] = {}
    for dest, state, n in conn.execute(
        "SELECT destination, state, COUNT(*) FROM outbox"
        " WHERE state IN ('queued', 'sending', 'dead') GROUP BY destination, state"
    ).fetchall():
        slot = counts.setdefault(dest, {"queued": 0, "dead": 0})
        slot["dead" if state == "dead" else "queued"] += n
    breakers = {
        r[0]: r
        for r in conn.execute(
            "SELECT peer, breaker, failures, last_error, next_attempt_ms FROM peer_delivery"
        ).fetchall()
    }
    result = []
    for peer in sorted(set(counts) | set(breakers)):
        c = counts.get(peer, {"queued": 0, "dead": 0})
        b = breakers.get(peer)
        result.append(
            PeerDelivery(
                peer=peer,
                queued=c["queued"],
                dead=c["dead"],
                breaker=b[1] if b else "closed",
                failures=b[2] if b else 0,
                last_error=b[3] if b else None,
                next_attempt_ms=b[4] if b else 0,
            )
        )
    return result
