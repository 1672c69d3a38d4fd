"""Forum log storage: entries, the folded state snapshot, heads, proofs, evidence, invites.

The engine keeps each forum's state in memory and writes a whole batch of entries together
with the state they lead to in ONE job (``append_entries``), so the snapshot in ``forums``
is always the fold of exactly the entries stored: a restart reads the snapshot instead of
refolding the log, and a crash can never leave the two disagreeing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .engine import SMALL_ROWS, SqliteEngine

# Entries in an append small enough to commit on the event loop's thread (engine.py):
# one or a few, the push of a quiet forum. Larger batches commit on the writer thread,
# beside the event loop's own work.
SMALL_APPEND: Final = 8


@dataclass(frozen=True)
class ForumRecord:
    id: str
    hub: str
    state: bytes | None  # snapshot (node/forums/snapshot.py), None before the first entry
    head_seq: int
    head_hash: bytes | None
    frozen: bool
    proof: bytes | None  # the equivocation proof that froze it (encoded)
    updated_ms: int


@dataclass(frozen=True)
class StoredEntry:
    seq: int
    hash: bytes
    event_id: bytes
    entry: bytes  # the signed entry's exact bytes


@dataclass(frozen=True)
class StoredAttachment:
    """The attachment of a detached event (protocol §6.9): ciphertext, kept until expiry."""

    event_id: bytes
    ref: bytes  # SHA-256(data), the event's ct_ref
    expires_ms: int
    data: bytes  # the encoded SealedContent


_KEEP_ATTACHMENT = (
    "INSERT OR IGNORE INTO attachments (forum, event_id, ref, expires_ms, data, received_ms)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class InviteRecord:
    forum: str
    candidate: str
    hub: str
    seq: int
    event_id: bytes
    entry: bytes
    received_ms: int


@dataclass(frozen=True)
class EvidenceRecord:
    id: int
    peer: str | None
    forum: str | None
    kind: str
    code: str
    object: bytes
    received_ms: int


@dataclass(frozen=True)
class SubmissionRecord:
    forum: str
    event_id: bytes
    event: bytes
    origin: str
    state: str  # pending | sequenced | refused
    reason: str | None
    received_ms: int


def _attachment(event_id: bytes, ref: bytes, expires_ms: int, data: bytes) -> StoredAttachment:
    return StoredAttachment(bytes(event_id), bytes(ref), int(expires_ms), bytes(data))


def _attachment_rows(
    forum: str, attachments: Sequence[StoredAttachment], now_ms: int
) -> list[tuple[str, bytes, bytes, int, bytes, int]]:
    """Rows to insert; an attachment already expired is never stored (§6.9 retention 1)."""
    return [
        (forum, a.event_id, a.ref, a.expires_ms, a.data, now_ms)
        for a in attachments
        if a.expires_ms > now_ms
    ]


def _forum(r: sqlite3.Row) -> ForumRecord:
    return ForumRecord(
        r["id"], r["hub"], None if r["state"] is None else bytes(r["state"]), r["head_seq"],
        None if r["head_hash"] is None else bytes(r["head_hash"]), bool(r["frozen"]),
        None if r["proof"] is None else bytes(r["proof"]), r["updated_ms"],
    )  # fmt: skip


class ForumStore:
    # Same shape as store._Base (declared here: store.py imports this module).
    _engine: SqliteEngine

    # ------------------------------------------------------------------ forums and entries

    async def list_forum_records(self) -> list[ForumRecord]:
        rows = await self._engine.fetch_all("SELECT * FROM forums ORDER BY id")
        return [_forum(r) for r in rows]

    async def append_entries(
        self,
        forum: str,
        hub: str,
        entries: Sequence[StoredEntry],
        state: bytes | None,
        head_seq: int,
        head_hash: bytes,
        frozen: bool,
        now_ms: int,
        truncate_after: int | None = None,
        attachments: Sequence[StoredAttachment] = (),
    ) -> None:
        """Store ``entries`` and the state they lead to, atomically. ``state``: its
        snapshot, or None to keep the stored one (older: a restart folds the entries
        after it, node/forums/snapshot.py).

        ``truncate_after``: first drop every entry (and head) after that seq — a hub move
        discards what the old hub sequenced past the certified point. ``attachments``:
        those of detached entries among them; one already past its expiry is not stored.
        """
        rows = [(forum, e.seq, e.hash, e.event_id, e.entry, now_ms) for e in entries]
        kept = _attachment_rows(forum, attachments, now_ms)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO forums (id, hub, state, head_seq, head_hash, frozen, created_ms,"
                " updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " hub = excluded.hub, state = COALESCE(excluded.state, forums.state),"
                " head_seq = excluded.head_seq,"
                " head_hash = excluded.head_hash, frozen = excluded.frozen,"
                " updated_ms = excluded.updated_ms",
                (forum, hub, state, head_seq, head_hash, int(frozen), now_ms, now_ms),
            )
            if truncate_after is not None:
                conn.execute(
                    "DELETE FROM entries WHERE forum = ? AND seq > ?", (forum, truncate_after)
                )
                conn.execute(
                    "DELETE FROM heads WHERE forum = ? AND seq > ?", (forum, truncate_after)
                )
            conn.executemany(
                "INSERT INTO entries (forum, seq, hash, event_id, entry, received_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            if kept:
                conn.executemany(_KEEP_ATTACHMENT, kept)

        small = len(rows) <= SMALL_APPEND and not kept and truncate_after is None
        await self._engine.write(job, small=small)

    async def save_snapshot(self, forum: str, state: bytes, seq: int) -> bool:
        """Store the snapshot of ``forum`` at ``seq`` if that is still its head (a commit
        racing it has written a newer one). Whether it was stored."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE forums SET state = ? WHERE id = ? AND head_seq = ?", (state, forum, seq)
            )
            return cur.rowcount == 1

        return await self._engine.write(job, small=True)

    async def read_entries(self, forum: str, from_seq: int, limit: int) -> list[StoredEntry]:
        rows = await self._engine.fetch_all(
            "SELECT seq, hash, event_id, entry FROM entries WHERE forum = ? AND seq >= ?"
            " ORDER BY seq LIMIT ?",
            (forum, from_seq, limit),
        )
        return [
            StoredEntry(r["seq"], bytes(r["hash"]), bytes(r["event_id"]), bytes(r["entry"]))
            for r in rows
        ]

    async def entry_index(self, forum: str) -> list[tuple[int, bytes, bytes]]:
        """``(seq, hash, event_id)`` of every entry, in seq order (no entry bytes)."""
        rows = await self._engine.fetch_all(
            "SELECT seq, hash, event_id FROM entries WHERE forum = ? ORDER BY seq", (forum,)
        )
        return [(r[0], bytes(r[1]), bytes(r[2])) for r in rows]

    async def get_entry(self, forum: str, seq: int) -> bytes | None:
        value = await self._engine.fetch_value(
            "SELECT entry FROM entries WHERE forum = ? AND seq = ?", (forum, seq)
        )
        return None if value is None else bytes(value)

    # ------------------------------------------------------------------ attachments (§6.9)

    async def keep_attachments(
        self, forum: str, attachments: Sequence[StoredAttachment], now_ms: int
    ) -> None:
        """Keep attachments ahead of their entries (a member's event we forward)."""
        kept = _attachment_rows(forum, attachments, now_ms)
        if not kept:
            return

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(_KEEP_ATTACHMENT, kept)

        await self._engine.write(job)

    async def entry_attachments(
        self, forum: str, first_seq: int, last_seq: int, now_ms: int
    ) -> dict[int, StoredAttachment]:
        """Unexpired attachments of the entries ``first_seq..last_seq``, by seq. Driven by
        the attachments of the forum (few: only updates still within retention)."""
        rows = await self._engine.fetch_all(
            "SELECT e.seq, a.event_id, a.ref, a.expires_ms, a.data FROM attachments a"
            " JOIN entries e ON e.forum = a.forum AND e.event_id = a.event_id"
            " WHERE a.forum = ? AND a.expires_ms > ? AND e.seq BETWEEN ? AND ?",
            (forum, now_ms, first_seq, last_seq),
        )
        return {r[0]: _attachment(*tuple(r)[1:]) for r in rows}

    async def event_attachments(
        self, forum: str, event_ids: Sequence[bytes], now_ms: int
    ) -> dict[bytes, StoredAttachment]:
        """Unexpired attachments of these events, by event id (re-sending submissions)."""
        if not event_ids:
            return {}
        marks = ", ".join("?" * len(event_ids))
        rows = await self._engine.fetch_all(
            "SELECT event_id, ref, expires_ms, data FROM attachments"
            f" WHERE forum = ? AND expires_ms > ? AND event_id IN ({marks})",
            (forum, now_ms, *event_ids),
        )
        return {bytes(r[0]): _attachment(*tuple(r)) for r in rows}

    async def forums_with_attachments(self) -> set[str]:
        rows = await self._engine.fetch_all("SELECT DISTINCT forum FROM attachments")
        return {r[0] for r in rows}

    async def next_attachment_expiry(self) -> int | None:
        """When the earliest kept attachment expires (None: none kept)."""
        value = await self._engine.fetch_value("SELECT MIN(expires_ms) FROM attachments")
        return None if value is None else int(value)

    async def delete_expired_attachments(self, now_ms: int) -> int:
        """Delete every attachment whose expiry has passed; how many. The writer runs with
        ``secure_delete``, so the rows are overwritten; the caller truncates the WAL."""

        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute("DELETE FROM attachments WHERE expires_ms <= ?", (now_ms,))
            return int(cur.rowcount)

        return await self._engine.write(job)

    async def count_attachments(self) -> int:
        return int(await self._engine.fetch_value("SELECT COUNT(*) FROM attachments") or 0)

    # ------------------------------------------------------------------ accountability

    async def freeze_forum(self, forum: str, state: bytes, proof: bytes, now_ms: int) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE forums SET frozen = 1, state = ?, proof = ?, updated_ms = ? WHERE id = ?",
                (state, proof, now_ms, forum),
            )

        await self._engine.write(job)

    async def frozen_forums(self) -> list[ForumRecord]:
        rows = await self._engine.fetch_all("SELECT * FROM forums WHERE frozen = 1 ORDER BY id")
        return [_forum(r) for r in rows]

    async def save_head(
        self, forum: str, seq: int, hash: bytes, head: bytes, cosigs: Sequence[tuple[str, bytes]],
        now_ms: int,
    ) -> None:  # fmt: skip
        """Keep a verified hub head and the cosignatures ``(node, cosig)`` seen for it."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO heads (forum, seq, hash, head) VALUES (?, ?, ?, ?)",
                (forum, seq, hash, head),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO cosignatures (forum, seq, node, hash, cosig, received_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(forum, seq, node, hash, c, now_ms) for node, c in cosigs],
            )

        await self._engine.write(job, small=len(cosigs) <= SMALL_ROWS)

    async def cosigners(self, forum: str, seq: int) -> list[str]:
        rows = await self._engine.fetch_all(
            "SELECT node FROM cosignatures WHERE forum = ? AND seq = ? ORDER BY node", (forum, seq)
        )
        return [r[0] for r in rows]

    async def add_evidence(
        self, peer: str | None, forum: str | None, kind: str, code: str, obj: bytes, now_ms: int
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO evidence (peer, forum, kind, code, object, received_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (peer, forum, kind, code, obj, now_ms),
            )

        await self._engine.write(job)

    async def list_evidence(
        self, forum: str | None = None, limit: int = 100
    ) -> list[EvidenceRecord]:
        where, params = ("WHERE forum = ?", (forum, limit)) if forum else ("", (limit,))
        rows = await self._engine.fetch_all(
            f"SELECT * FROM evidence {where} ORDER BY id DESC LIMIT ?", params
        )
        return [
            EvidenceRecord(r["id"], r["peer"], r["forum"], r["kind"], r["code"],
                           bytes(r["object"]), r["received_ms"])
            for r in rows
        ]  # fmt: skip

    # ------------------------------------------------------------------ invitations

    async def save_invite(self, invite: InviteRecord) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO forum_invites (forum, candidate, hub, seq, event_id,"
                " entry, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (invite.forum, invite.candidate, invite.hub, invite.seq, invite.event_id,
                 invite.entry, invite.received_ms),
            )  # fmt: skip

        await self._engine.write(job)

    async def list_invites(
        self, *, candidate: str | None = None, forum: str | None = None
    ) -> list[InviteRecord]:
        clauses, params = [], []
        for column, value in (("candidate", candidate), ("forum", forum)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._engine.fetch_all(
            f"SELECT * FROM forum_invites {where} ORDER BY received_ms, forum", params
        )
        return [
            InviteRecord(r["forum"], r["candidate"], r["hub"], r["seq"], bytes(r["event_id"]),
                         bytes(r["entry"]), r["received_ms"])
            for r in rows
        ]  # fmt: skip

    # ------------------------------------------------------------------ forwarded submissions

    async def add_submissions(
        self, forum: str, events: Sequence[tuple[bytes, bytes]], origin: str, now_ms: int
    ) -> None:
        """Record events ``(event_id, event)`` sent to the hub; a repeat is a no-op."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO submissions (forum, event_id, event, origin, received_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                [(forum, eid, ev, origin, now_ms) for eid, ev in events],
            )

        await self._engine.write(job)

    async def resolve_submissions(
        self, forum: str, outcomes: Sequence[tuple[bytes, str, str | None]]
    ) -> None:
        """Outcomes ``(event_id, "sequenced" | "refused" | "pending", reason)``."""

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE submissions SET state = ?, reason = ? WHERE forum = ? AND event_id = ?",
                [(state, reason, forum, eid) for eid, state, reason in outcomes],
            )

        await self._engine.write(job)

    async def list_submissions(
        self, forum: str, state: str | None = None, event_id: bytes | None = None
    ) -> list[SubmissionRecord]:
        sql, params = "SELECT * FROM submissions WHERE forum = ?", [forum]
        if state is not None:
            sql, params = sql + " AND state = ?", [*params, state]
        if event_id is not None:
            sql, params = sql + " AND event_id = ?", [*params, event_id]
        rows = await self._engine.fetch_all(sql + " ORDER BY id", params)
        return [
            SubmissionRecord(r["forum"], bytes(r["event_id"]), bytes(r["event"]), r["origin"],
                             r["state"], r["reason"], r["received_ms"])
            for r in rows
        ]  # fmt: skip
