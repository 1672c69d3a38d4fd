"""This node's own members: their devices, one-time enrollment codes and sessions.

Secrets never reach the database in the clear: enrollment codes and session tokens are
stored as SHA-256 hashes (a leaked db enrolls no one and opens no session), and devices
hold only public keys — private halves are created on the device and stay there.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from .engine import SqliteEngine

MemberStatus = Literal["invited", "active", "suspended", "removed"]


@dataclass(frozen=True)
class MemberRecord:
    id: str
    org: str
    title: str | None
    industry: str | None
    status: MemberStatus
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class DeviceRecord:
    kid: str
    member: str
    sign_key: bytes
    agree_key: bytes
    label: str | None
    status: str  # active | revoked
    created_ms: int
    revoked_ms: int | None


@dataclass(frozen=True)
class SessionRecord:
    member: str
    device: str
    created_ms: int
    expires_ms: int


def _member(r: sqlite3.Row) -> MemberRecord:
    return MemberRecord(
        r["id"], r["org"], r["title"], r["industry"], r["status"], r["created_ms"], r["updated_ms"]
    )


def _device(r: sqlite3.Row) -> DeviceRecord:
    return DeviceRecord(
        r["kid"], r["member"], bytes(r["sign_key"]), bytes(r["agree_key"]), r["label"],
        r["status"], r["created_ms"], r["revoked_ms"],
    )  # fmt: skip


SESSION_CACHE_MAX = 10_000  # live sessions kept in memory; past it the oldest go


class MemberStore:
    # A mixin of ``Storage`` (store.py), which sets ``_engine``; not importing store.py's
    # base keeps the import one-way.
    _engine: SqliteEngine
    # Every client request checks its session. Live sessions are kept in memory (token
    # hash -> record), so that check is a dict lookup instead of a reader-thread round
    # trip. Only live sessions are cached, and any write that can end one (logout, device
    # revoked, member removed) clears the cache and bumps the generation, so a lookup
    # that raced such a write never caches what it read. The database stays the record;
    # other processes write it only while the node is stopped (the data dir lock).
    _sessions: dict[bytes, SessionRecord] | None = None
    _sessions_gen: int = 0

    def _end_sessions(self) -> None:
        self._sessions = {}
        self._sessions_gen += 1

    # ------------------------------------------------------------------ members

    async def get_member(self, member: str) -> MemberRecord | None:
        row = await self._engine.fetch_one("SELECT * FROM members WHERE id = ?", (member,))
        return None if row is None else _member(row)

    async def list_members(self) -> list[MemberRecord]:
        rows = await self._engine.fetch_all("SELECT * FROM members ORDER BY id")
        return [_member(r) for r in rows]

    async def add_member(
        self,
        member: str,
        org: str,
        title: str | None,
        industry: str | None,
        code_hash: bytes,
        now_ms: int,
        expires_ms: int,
    ) -> bool:
        """Create ``member`` (status invited) with one enrollment code; False if it exists."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO members (id, org, title, industry, status, created_ms,"
                " updated_ms) VALUES (?, ?, ?, ?, 'invited', ?, ?)",
                (member, org, title, industry, now_ms, now_ms),
            )
            if cur.rowcount != 1:
                return False
            _insert_code(conn, member, code_hash, now_ms, expires_ms)
            return True

        return await self._engine.write(job)

    async def new_enrollment_code(
        self, member: str, code_hash: bytes, now_ms: int, expires_ms: int
    ) -> None:
        """A fresh code for ``member``; earlier unused codes stop working (one live code)."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE enrollment_codes SET used_ms = ? WHERE member = ? AND used_ms IS NULL",
                (now_ms, member),
            )
            _insert_code(conn, member, code_hash, now_ms, expires_ms)
            # A removed member who is given a new code comes back as invited.
            conn.execute(
                "UPDATE members SET status = 'invited', updated_ms = ?"
                " WHERE id = ? AND status = 'removed'",
                (now_ms, member),
            )

        await self._engine.write(job)

    async def remove_member(self, member: str, now_ms: int) -> bool:
        """Mark removed, revoke devices, end sessions, void codes. False if unknown."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE members SET status = 'removed', updated_ms = ? WHERE id = ?",
                (now_ms, member),
            )
            if cur.rowcount != 1:
                return False
            conn.execute("DELETE FROM sessions WHERE member = ?", (member,))
            conn.execute(
                "UPDATE devices SET status = 'revoked', revoked_ms = ?"
                " WHERE member = ? AND status = 'active'",
                (now_ms, member),
            )
            conn.execute(
                "UPDATE enrollment_codes SET used_ms = ? WHERE member = ? AND used_ms IS NULL",
                (now_ms, member),
            )
            return True

        self._end_sessions()
        try:
            return await self._engine.write(job)
        finally:
            self._end_sessions()

    # ------------------------------------------------------------------ enrollment

    async def enroll_device(
        self,
        code_hash: bytes,
        member: str,
        kid: str,
        sign_key: bytes,
        agree_key: bytes,
        now_ms: int,
    ) -> str | None:
        """Spend the code and register the device in one transaction.

        Returns None on success, else why not: ``"code"`` (unknown, used, expired or for
        another member) or ``"device"`` (a key already registered). One transaction, so a
        code is spent exactly once even when two enrollments race.
        """

        def job(conn: sqlite3.Connection) -> str | None:
            cur = conn.execute(
                "UPDATE enrollment_codes SET used_ms = ? WHERE code_hash = ? AND member = ?"
                " AND used_ms IS NULL AND expires_ms > ?",
                (now_ms, code_hash, member, now_ms),
            )
            if cur.rowcount != 1:
                return "code"
            if not _insert_device(conn, member, kid, sign_key, agree_key, now_ms):
                raise _Refused("device")
            conn.execute(
                "UPDATE members SET status = 'active', updated_ms = ? WHERE id = ?",
                (now_ms, member),
            )
            return None

        try:
            return await self._engine.write(job)
        except _Refused as exc:  # rolled back: the code stays unspent
            return exc.reason

    async def code_member(self, code_hash: bytes) -> str | None:
        value = await self._engine.fetch_value(
            "SELECT member FROM enrollment_codes WHERE code_hash = ?", (code_hash,)
        )
        return None if value is None else str(value)

    # ------------------------------------------------------------------ devices

    async def add_device(
        self, member: str, kid: str, sign_key: bytes, agree_key: bytes, now_ms: int
    ) -> bool:
        """False if either key is already registered (to anyone)."""

        def job(conn: sqlite3.Connection) -> bool:
            return _insert_device(conn, member, kid, sign_key, agree_key, now_ms)

        return await self._engine.write(job)

    async def revoke_device(self, member: str, kid: str, now_ms: int) -> bool:
        """Revoke ``kid``, end its sessions; False unless an active device of ``member``."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE devices SET status = 'revoked', revoked_ms = ?"
                " WHERE kid = ? AND member = ? AND status = 'active'",
                (now_ms, kid, member),
            )
            if cur.rowcount != 1:
                return False
            conn.execute("DELETE FROM sessions WHERE device = ?", (kid,))
            return True

        self._end_sessions()
        try:
            return await self._engine.write(job)
        finally:
            self._end_sessions()

    async def get_device(self, kid: str) -> DeviceRecord | None:
        row = await self._engine.fetch_one("SELECT * FROM devices WHERE kid = ?", (kid,))
        return None if row is None else _device(row)

    async def list_devices(self, member: str, active_only: bool = True) -> list[DeviceRecord]:
        where = " AND status = 'active'" if active_only else ""
        rows = await self._engine.fetch_all(
            f"SELECT * FROM devices WHERE member = ?{where} ORDER BY created_ms, kid", (member,)
        )
        return [_device(r) for r in rows]

    async def set_attestation(self, member: str, attestation: bytes) -> None:
        """Keep the latest attestation on every active device row of ``member``."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE devices SET attestation = ? WHERE member = ? AND status = 'active'",
                (attestation, member),
            )

        await self._engine.write(job)

    async def get_attestation(self, member: str) -> bytes | None:
        value = await self._engine.fetch_value(
            "SELECT attestation FROM devices WHERE member = ? AND status = 'active'"
            " AND attestation IS NOT NULL ORDER BY created_ms DESC LIMIT 1",
            (member,),
        )
        return None if value is None else bytes(value)

    # ------------------------------------------------------------------ sessions

    async def create_session(
        self, token_hash: bytes, member: str, device: str, now_ms: int, expires_ms: int
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE expires_ms <= ?", (now_ms,))
            conn.execute(
                "INSERT INTO sessions (token_hash, member, device, created_ms, expires_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash, member, device, now_ms, expires_ms),
            )

        await self._engine.write(job)

    async def get_session(self, token_hash: bytes, now_ms: int) -> SessionRecord | None:
        """The live session of ``token_hash`` whose device and member are still active."""
        cache = self._sessions
        if cache is None:
            cache = self._sessions = {}
        found = cache.get(token_hash)
        if found is not None:
            if found.expires_ms > now_ms:
                return found
            del cache[token_hash]
        gen = self._sessions_gen
        row = await self._engine.fetch_one(
            "SELECT s.member, s.device, s.created_ms, s.expires_ms FROM sessions s"
            " JOIN devices d ON d.kid = s.device JOIN members m ON m.id = s.member"
            " WHERE s.token_hash = ? AND s.expires_ms > ? AND d.status = 'active'"
            " AND d.member = s.member AND m.status = 'active'",
            (token_hash, now_ms),
        )
        if row is None:
            return None
        record = SessionRecord(row[0], row[1], row[2], row[3])
        if gen == self._sessions_gen and self._sessions is not None:
            if len(self._sessions) >= SESSION_CACHE_MAX:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[token_hash] = record
        return record

    async def delete_session(self, token_hash: bytes) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

        self._end_sessions()
        try:
            await self._engine.write(job)
        finally:
            self._end_sessions()


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _insert_code(
    conn: sqlite3.Connection, member: str, code_hash: bytes, now_ms: int, expires_ms: int
) -> None:
    conn.execute(
        "INSERT INTO enrollment_codes (code_hash, member, created_ms, expires_ms)"
        " VALUES (?, ?, ?, ?)",
        (code_hash, member, now_ms, expires_ms),
    )


def _insert_device(
    conn: sqlite3.Connection, member: str, kid: str, sign_key: bytes, agree_key: bytes, now_ms: int
) -> bool:
    taken = conn.execute(
        "SELECT 1 FROM devices WHERE kid = ? OR sign_key = ? OR agree_key = ?",
        (kid, sign_key, agree_key),
    ).fetchone()
    if taken is not None:
        return False
    conn.execute(
        "INSERT INTO devices (kid, member, sign_key, agree_key, status, created_ms)"
        " VALUES (?, ?, ?, ?, 'active', ?)",
        (kid, member, sign_key, agree_key, now_ms),
    )
    return True
