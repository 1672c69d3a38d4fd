"""Backup files and restore: format, permissions, refusals, tamper and integrity checks."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from node.backup import (
    MANIFEST,
    PARTS,
    BackupError,
    new_workdir,
    read_manifest,
    restore_backup,
    take_snapshot,
    workdir_removed,
    write_backup,
)
from node.datadir import DataDir, DataDirError, init_data_dir
from node.keystore import load_keys
from node.storage.maintenance import apply_migrations, db_status

from .conftest import NAME, NOW_MS, fixed_rng


def make_node(root: Path) -> DataDir:
    data = init_data_dir(root, NAME, NAME, fixed_rng(), NOW_MS)
    apply_migrations(data.db, NOW_MS)
    return data


def make_backup(data: DataDir, dest: Path, force: bool = False) -> dict[str, object]:
    with workdir_removed(new_workdir(data)) as workdir:
        snap = take_snapshot(data, workdir)
        assert mode(snap.db) == 0o600 and mode(snap.key) == 0o600
        return write_backup(dest, data, snap, NOW_MS, force).manifest


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def node(tmp_path: Path) -> DataDir:
    return make_node(tmp_path / "node")


def test_backup_holds_every_part_with_hashes(node: DataDir, tmp_path: Path) -> None:
    dest = tmp_path / "node.pfbak"
    manifest = make_backup(node, dest)
    assert mode(dest) == 0o600
    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [MANIFEST, *PARTS]
        assert all(m.mode == 0o600 and m.isreg() for m in members)
    keys = load_keys(node.key)
    assert manifest["node"] == {"name": NAME, "fingerprint": keys.fingerprint, "kid": keys.kid}
    assert manifest["schema_version"] == db_status(node.db).latest_version
    assert read_manifest(dest) == manifest
    assert list((node.root / "backup-snapshots").iterdir()) == []  # no key copy left


def test_backup_is_0600_whatever_the_umask(node: DataDir, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        make_backup(node, tmp_path / "b")
    finally:
        os.umask(old)
    assert mode(tmp_path / "b") == 0o600


def test_backup_refuses_to_overwrite_unless_forced(node: DataDir, tmp_path: Path) -> None:
    dest = tmp_path / "b"
    dest.write_text("precious")
    with pytest.raises(BackupError, match="--force"):
        make_backup(node, dest)
    assert dest.read_text() == "precious"
    make_backup(node, dest, force=True)
    assert read_manifest(dest)["node"]["name"] == NAME
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_restore_gives_back_the_same_node(node: DataDir, tmp_path: Path) -> None:
    dest = tmp_path / "b"
    make_backup(node, dest)
    target = tmp_path / "restored"
    restore_backup(dest, target)
    restored = DataDir(target)
    for name in PARTS:
        if name != "node.db":  # the db is a snapshot, equal in content, not in bytes
            assert (target / name).read_bytes() == (node.root / name).read_bytes()
        assert mode(target / name) == 0o600
    assert mode(target) == 0o700
    assert load_keys(restored.key).fingerprint == load_keys(node.key).fingerprint
    status = db_status(restored.db)
    assert status.integrity_ok and not status.pending
    assert sorted(p.name for p in target.iterdir()) == sorted(PARTS)


def test_restore_into_existing_empty_dir(node: DataDir, tmp_path: Path) -> None:
    make_backup(node, tmp_path / "b")
    (tmp_path / "empty").mkdir()
    restore_backup(tmp_path / "b", tmp_path / "empty")
    assert DataDir(tmp_path / "empty").exists()


def test_restore_refuses_a_non_empty_dir(node: DataDir, tmp_path: Path) -> None:
    make_backup(node, tmp_path / "b")
    before = sorted(p.name for p in node.root.iterdir())
    with pytest.raises(DataDirError, match="not empty"):
        restore_backup(tmp_path / "b", node.root)
    assert sorted(p.name for p in node.root.iterdir()) == before


def _rewrite(src: Path, dest: Path, change: dict[str, bytes | None]) -> None:
    """Copy a backup, replacing (or, with None, dropping) members by name."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            if m.name in change:
                if change[m.name] is None:
                    continue
                data = change[m.name]  # type: ignore[assignment]
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_restore_detects_a_changed_part(node: DataDir, tmp_path: Path) -> None:
    make_backup(node, tmp_path / "b")
    token = b"x" * len(node.admin_token.read_bytes())
    _rewrite(tmp_path / "b", tmp_path / "bad", {"admin.token": token})
    with pytest.raises(BackupError, match="admin.token does not match its manifest hash"):
        restore_backup(tmp_path / "bad", tmp_path / "r")
    assert not (tmp_path / "r").exists()  # we created it, we removed it


def test_restore_detects_a_missing_part(node: DataDir, tmp_path: Path) -> None:
    make_backup(node, tmp_path / "b")
    _rewrite(tmp_path / "b", tmp_path / "bad", {"node.key": None})
    (tmp_path / "r").mkdir()
    with pytest.raises(BackupError, match="node.key missing"):
        restore_backup(tmp_path / "bad", tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []  # an empty dir we did not create stays


def test_restore_refuses_a_newer_schema(node: DataDir, tmp_path: Path) -> None:
    make_backup(node, tmp_path / "b")
    manifest = read_manifest(tmp_path / "b")
    manifest["schema_version"] = 999
    _rewrite(tmp_path / "b", tmp_path / "new", {MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(BackupError, match="upgrade PeerForum"):
        restore_backup(tmp_path / "new", tmp_path / "r")


def test_restore_refuses_foreign_members(node: DataDir, tmp_path: Path) -> None:
    make_backup(node, tmp_path / "b")
    evil = tmp_path / "evil"
    with tarfile.open(tmp_path / "b") as tin, tarfile.open(evil, "w") as tout:
        for m in tin.getmembers():
            tout.addfile(m, tin.extractfile(m))
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tout.addfile(info, io.BytesIO(b"!"))
    with pytest.raises(BackupError, match="unexpected member"):
        restore_backup(evil, tmp_path / "r")
    assert not (tmp_path / "escape").exists()


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BackupError, match="not a PeerForum backup"):
        restore_backup(tmp_path / "junk", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_snapshot_is_consistent_under_concurrent_writes(node: DataDir, tmp_path: Path) -> None:
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(node.db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        i = 0
        while not stop.is_set():
            conn.execute("INSERT INTO node_state (key, value) VALUES (?, ?)", (f"k{i}", b"v" * 500))
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for n in range(3):
            make_backup(node, tmp_path / f"b{n}")
    finally:
        stop.set()
        thread.join()
    for n in range(3):
        restore_backup(tmp_path / f"b{n}", tmp_path / f"r{n}")
        assert db_status(tmp_path / f"r{n}" / "node.db").integrity_ok
