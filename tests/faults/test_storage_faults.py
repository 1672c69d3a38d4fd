"""Faults (issue 7): the database locked by another process, and the disk full.

Either way a member gets a clear, coded answer (503 ``api.unavailable``), never a 500;
the database passes ``PRAGMA integrity_check``; and the node serves again by itself once
the cause goes away. The disk is a small tmpfs mounted for the test (we run as root in
CI; the test fails loudly rather than skipping if it cannot mount).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Nodes
from tests.integration.federation_kit import ApiError, Forum, Member, Org, new_org, wait_until
from tests.report import record

FAST_BUSY = "[storage]\nbusy_timeout_ms = 300\n"


def _solo(org: Org) -> tuple[Member, Forum]:
    """A forum of one member on one node, with an epoch so content may be posted."""
    org.start()
    alice = Member(org, "alice").enroll()
    forum = Forum(alice)
    alice.submit(forum.create(alice))
    alice.submit(forum.commit(alice, [], [alice]))
    forum.epoch = 1
    return alice, forum


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _refused_clearly(alice: Member, forum: Forum) -> ApiError:
    try:
        alice.submit(forum.post(alice, "while the database cannot take it"))
    except ApiError as exc:
        assert exc.status == 503 and exc.code == "api.unavailable", exc
        assert "Traceback" not in exc.message
        return exc
    raise AssertionError("a write went through a database it cannot write")


def _fast_busy(org: Org) -> None:
    config = org.data / "config.toml"
    config.write_text(config.read_text().replace("[storage]\n", FAST_BUSY, 1))


def test_database_locked_by_another_process(nodes: Nodes) -> None:
    org = new_org(nodes)
    _fast_busy(org)
    alice, forum = _solo(org)
    head = alice.head(forum.id)
    db = org.data / "node.db"
    locker = subprocess.Popen(  # holds an EXCLUSIVE lock until its stdin closes
        [sys.executable, "-c", (
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()\n"
            "c.execute('ROLLBACK')\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        err = _refused_clearly(alice, forum)
        assert "busy" in err.message or "locked" in err.message or "try again" in err.message
        assert org.healthy()
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(10)
    alice.submit(forum.post(alice, "after the lock"))
    assert alice.head(forum.id) == head + 1
    org.stop()
    assert _integrity(db) == "ok"
    record("fault_round", 1, fault="database locked")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_then_space_freed(nodes: Nodes, small_disk: Path) -> None:
    org = new_org(nodes)
    moved = small_disk / "data"  # the node's data dir lives on the small disk
    subprocess.run(["cp", "-a", str(org.data), str(moved)], check=True)
    org.data = moved
    alice, forum = _solo(org)
    head = alice.head(forum.id)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # fill every free byte: big writes, then small ones for the last pages
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    accepted = 0
    for _ in range(50):  # the WAL may hold a little: write until the disk is really full
        try:
            alice.submit(forum.post(alice, "filling the disk"))
            accepted += 1
        except ApiError as exc:
            assert (exc.status, exc.code) == (503, "api.unavailable"), exc
            break
    else:
        raise AssertionError("the disk never filled")
    _refused_clearly(alice, forum)
    assert org.healthy()
    os.unlink(filler)
    wait_until("writes work again", lambda: _post_ok(alice, forum), timeout=30)
    assert alice.head(forum.id) == head + accepted + 1
    org.stop()
    assert _integrity(moved / "node.db") == "ok"
    record("fault_round", 1, fault="disk full")


def _post_ok(alice: Member, forum: Forum) -> bool:
    try:
        alice.submit(forum.post(alice, "space again"))
        return True
    except ApiError:
        return False
