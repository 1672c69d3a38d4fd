"""The physical limits of one core, measured in the same run as the node figures.

What a hub must do per entry, at the least: verify the author's Ed25519 signature, sign
the entry, and store it. Each is timed alone, in a loop on one core, on inputs of the
size the node really handles (an entry built by ``protocol.log``), so
``sequencing_limit_eps`` is the rate a perfect hub written around these three calls
could reach on this machine:

    sequencing_limit_eps = 1 / (1/verify_per_core + 1/sign_per_core + 1/insert_batch_per_core)
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nacl.signing

from protocol.group import seal_content_map
from protocol.keys import SigningKey
from protocol.log import ZERO_HASH, append_entry, build_event, make_forum_id

INSERT_BATCH = 256  # rows per transaction: the hub's sequencer batch (node/forums/hub.py)


def sample_entry() -> bytes:
    """A real content entry as the hub stores it (sealed post of ~100 characters)."""
    member, hub = SigningKey(bytes(range(32))), SigningKey(bytes(32))
    forum = make_forum_id(bytes(16), "127.0.0.1:8701")
    header = {
        "v": 1,
        "forum": forum,
        "type": "post",
        "author": "@alice:127.0.0.1:8701",
        "kid": member.key_id,
        "ts": 1_800_000_000_000,
        "nonce": bytes(16),
        "epoch": 1,
    }
    ct = seal_content_map(bytes(32), header=header, body={"text": "x" * 100}, nonce=bytes(12))
    ev = build_event(
        forum=forum,
        type="post",
        author=header["author"],
        device_key=member,
        ts=header["ts"],
        nonce=bytes(16),
        epoch=1,
        body={"ct": ct.to_wire()},
    )
    return append_entry(ZERO_HASH, 1, ev.raw, hub, "127.0.0.1:8701", header["ts"]).raw


def _rate(step: Callable[[], int], seconds: float) -> float:
    """Operations per second of ``step`` (which returns how many it did), best of 3."""
    best = 0.0
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            done += step()
        best = max(best, done / elapsed)
    return best


def verify_rate(message: bytes, seconds: float) -> float:
    key = nacl.signing.SigningKey(bytes(32))
    sig = key.sign(message).signature
    vk = key.verify_key

    def step() -> int:
        for _ in range(100):
            vk.verify(message, sig)
        return 100

    return _rate(step, seconds)


def sign_rate(message: bytes, seconds: float) -> float:
    key = nacl.signing.SigningKey(bytes(32))

    def step() -> int:
        for _ in range(100):
            key.sign(message)
        return 100

    return _rate(step, seconds)


def insert_rate(entry: bytes, seconds: float, directory: Path | None = None) -> float:
    """Rows/s of ``executemany`` batches, one transaction each, into the node's entries
    table shape (two unique indexes), WAL and synchronous=NORMAL as the node runs."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(
            "CREATE TABLE entries (forum TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL,"
            " event_id BLOB NOT NULL, entry BLOB NOT NULL, received_ms INTEGER NOT NULL,"
            " UNIQUE (forum, seq), UNIQUE (forum, event_id))"
        )
        forum = make_forum_id(bytes(16), "127.0.0.1:8701")
        seq = 0

        def step() -> int:
            nonlocal seq
            rows = []
            for _ in range(INSERT_BATCH):
                seq += 1
                rows.append((forum, seq, os.urandom(32), os.urandom(32), entry, seq))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            return INSERT_BATCH

        try:
            return _rate(step, seconds)
        finally:
            conn.close()


def measure(seconds: float) -> dict[str, float]:
    """``verify_per_core``, ``sign_per_core``, ``insert_batch_per_core`` and the limit."""
    entry = sample_entry()
    # A hub verifies the author's event and signs the entry; both inputs are about
    # entry-sized, so the entry's bytes stand in for both (Ed25519 cost barely depends on it).
    verify = verify_rate(entry, seconds)
    sign = sign_rate(entry, seconds)
    insert = insert_rate(entry, seconds)
    limit = 1 / (1 / verify + 1 / sign + 1 / insert)
    return {"verify_per_core": verify, "sign_per_core": sign, "insert_batch_per_core": insert,
            "sequencing_limit_eps": limit, "entry_bytes": float(len(entry))}  # fmt: skip
