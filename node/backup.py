"""One-file backups of a node, and restoring them into a new data directory.

A backup is an uncompressed POSIX tar (inspect it with ``tar tvf``) holding, in order:

    manifest.json   what the file holds: node name, fingerprint, schema version, time,
                    PeerForum version, and the size and sha256 of every other member
    node.db         a consistent SQLite snapshot (single file, no -wal)
    config.toml     the node's settings
    node.key        the node's signing key             (secret)
    admin.token     the local admin API's bearer token (secret)

It contains the node's signing key, so whoever holds it can act as the node: it is
created 0600 and must be stored like a private key. It contains no forum plaintext:
everything in the database is ciphertext or routing metadata (DESIGN §2).

Tar rather than a custom container because every operator already has a tool that lists
and extracts it; plain rather than compressed because the bulk of the database is
ciphertext, which does not compress.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from .config import ConfigError, parse_config
from .datadir import DataDir, DataDirError
from .keystore import KeyFileError, load_keys
from .storage.engine import load_migrations
from .storage.maintenance import integrity_check, open_readonly, sha256_file, snapshot

FORMAT = "peerforum-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Archive order; config.toml is also what makes a data dir count as initialized, so
# restore moves it into place last.
PARTS = ("node.db", "config.toml", "node.key", "admin.token")
_SECRET_PARTS = ("node.key", "admin.token")
_MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20
SNAPSHOT_DIR = "backup-snapshots"
# Snapshot dirs older than this are leftovers of a crashed backup and are swept.
_STALE_SNAPSHOT_S = 3600

# (stage, bytes done, bytes total): drives the CLI's progress bar; stages are
# "archive" and "restore".
Progress = Callable[[str, int, int], None]


class BackupError(Exception):
    """The backup cannot be made or restored; the message says why and what to do."""


def peerforum_version() -> str:
    try:
        return metadata.version("peerforum")
    except metadata.PackageNotFoundError:
        return "unknown"


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


# ---------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of the node's changing state, in a private work dir."""

    workdir: Path
    db: Path
    key: Path
    schema_version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "db": str(self.db),
            "key": str(self.key),
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Snapshot:
        return cls(
            Path(obj["workdir"]), Path(obj["db"]), Path(obj["key"]), int(obj["schema_version"])
        )


def new_workdir(data: DataDir) -> Path:
    """A fresh 0700 directory under DATA/backup-snapshots/ (stale ones are removed)."""
    parent = data.root / SNAPSHOT_DIR
    parent.mkdir(mode=0o700, exist_ok=True)
    cutoff = time.time() - _STALE_SNAPSHOT_S
    for old in parent.iterdir():
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
    workdir = parent / secrets.token_hex(8)
    workdir.mkdir(mode=0o700)
    return workdir


def take_snapshot(data: DataDir, workdir: Path) -> Snapshot:
    """Snapshot node.db and copy node.key into ``workdir``.

    A running node must call this while holding its key-rotation lock: a rotation
    records its statement in the db and then replaces node.key, so a db and key taken
    across a rotation could disagree (a new key whose statement peers never get).
    """
    db = workdir / "node.db"
    version = snapshot(data.db, db)
    key = workdir / "node.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.key.read_bytes())
    return Snapshot(workdir, db, key, version)


# ---------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]


def check_destination(dest: Path, force: bool) -> None:
    if dest.is_dir():
        raise BackupError(f"{dest} is a directory: name the backup file, e.g. {dest}/node.pfbak")
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists: choose another name, or pass --force to replace it")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} does not exist: create it first")


def write_backup(
    dest: Path,
    data: DataDir,
    snap: Snapshot,
    now_ms: int,
    force: bool = False,
    progress: Progress = _no_progress,
) -> BackupResult:
    """Write the backup file. It is 0600 from creation and appears under its name only
    when complete (written beside it, then linked or renamed into place)."""
    check_destination(dest, force)
    config = parse_config(data.config.read_text(encoding="utf-8"))
    keys = load_keys(snap.key)
    sources = {
        "node.db": snap.db,
        "config.toml": data.config,
        "node.key": snap.key,
        "admin.token": data.admin_token,
    }
    parts = {
        name: {"size": sources[name].stat().st_size, "sha256": sha256_file(sources[name])}
        for name in PARTS
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "peerforum_version": peerforum_version(),
        "created_ms": now_ms,
        "node": {"name": config.name, "fingerprint": keys.fingerprint, "kid": keys.kid},
        "schema_version": snap.schema_version,
        "parts": parts,
        "secrets": list(_SECRET_PARTS),
        "note": "holds the node's signing key: store it like a private key. "
        "No forum plaintext: the database holds only ciphertext and metadata.",
    }
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask said
        with os.fdopen(fd, "wb") as f:
            _write_tar(f, manifest, sources, now_ms, progress)
            f.flush()
            os.fsync(f.fileno())
        _move_into_place(tmp, dest, force)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return BackupResult(dest, manifest)


def _member(name: str, size: int, now_ms: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, now_ms // 1000
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Counting(io.RawIOBase):
    """Reads a file and reports each chunk to the progress callback."""

    def __init__(self, f: IO[bytes], tick: Callable[[int], None]) -> None:
        self._f, self._tick = f, tick

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        block = self._f.read(size)
        self._tick(len(block))
        return block


def _write_tar(
    f: IO[bytes],
    manifest: dict[str, Any],
    sources: dict[str, Path],
    now_ms: int,
    progress: Progress,
) -> None:
    blob = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    total = sum(p["size"] for p in manifest["parts"].values())
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        progress("archive", done, total)

    with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_member(MANIFEST, len(blob), now_ms), io.BytesIO(blob))
        for name in PARTS:
            with open(sources[name], "rb") as src:
                tar.addfile(
                    _member(name, manifest["parts"][name]["size"], now_ms), _Counting(src, tick)
                )


def _move_into_place(tmp: Path, dest: Path, force: bool) -> None:
    if force:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest appeared meanwhile: never overwrite silently
    except FileExistsError as exc:
        raise BackupError(f"{dest} appeared while writing: pass --force to replace it") from exc
    except OSError:  # a filesystem without hard links
        if dest.exists():
            raise BackupError(f"{dest} exists: pass --force to replace it") from None
        os.rename(tmp, dest)
        return
    tmp.unlink()


# ---------------------------------------------------------------------------- reading


def _open_archive(file: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(file, mode="r:")
    except FileNotFoundError as exc:
        raise BackupError(f"{file}: no such file") from exc
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{file} is not a PeerForum backup (not a tar file: {exc})") from exc


def _load_manifest(tar: tarfile.TarFile, file: Path) -> dict[str, Any]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isreg():
        raise BackupError(f"{file} is not a PeerForum backup (no {MANIFEST} first)")
    if first.size > _MAX_MANIFEST_BYTES:
        raise BackupError(f"{file}: {MANIFEST} is implausibly large")
    raw = tar.extractfile(first)
    assert raw is not None
    try:
        manifest: dict[str, Any] = json.loads(raw.read())
        if manifest.get("format") != FORMAT:
            raise ValueError("wrong format")
    except ValueError as exc:
        raise BackupError(f"{file} is not a PeerForum backup ({MANIFEST} unreadable)") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{file} is backup format {manifest.get('format_version')!r}; this PeerForum "
            f"reads format {FORMAT_VERSION}: restore it with the version that made it"
        )
    parts = manifest.get("parts")
    if not isinstance(parts, dict) or set(parts) != set(PARTS):
        raise BackupError(f"{file}: the manifest does not list {', '.join(PARTS)}")
    known = load_migrations()[-1].version
    if int(manifest.get("schema_version", 0)) > known:
        raise BackupError(
            f"{file} holds database schema {manifest['schema_version']} but this PeerForum "
            f"knows only up to {known}: upgrade PeerForum ({manifest.get('peerforum_version')}"
            " made it), then restore"
        )
    return manifest


def read_manifest(file: Path) -> dict[str, Any]:
    with _open_archive(file) as tar:
        return _load_manifest(tar, file)


def _empty_target(target: Path) -> bool:
    """True when we create ``target``; refuses one that holds anything."""
    if target.exists() and not target.is_dir():
        raise DataDirError(f"{target} is not a directory: restore into a new directory")
    if target.is_dir():
        if any(target.iterdir()):
            raise DataDirError(
                f"{target} is not empty: restore only into a new or empty directory "
                "(restore never overwrites a node)"
            )
        return False
    target.mkdir(mode=0o700, parents=True)
    return True


def restore_backup(file: Path, target: Path, progress: Progress = _no_progress) -> dict[str, Any]:
    """Restore ``file`` into ``target`` (new or empty); returns the manifest.

    Everything is extracted into a staging dir inside ``target`` and checked (hashes,
    database integrity, key and config match the manifest) before anything takes its
    final name, config.toml last, so a failed restore never leaves a half node behind.
    """
    if not file.is_file():
        raise BackupError(f"{file}: no such file")
    created = _empty_target(target)
    os.chmod(target, 0o700)
    staging = target / f".restore-{secrets.token_hex(4)}"
    try:
        with _open_archive(file) as tar:
            manifest = _load_manifest(tar, file)
            staging.mkdir(mode=0o700)
            _extract_parts(tar, manifest, staging, file, progress)
        _verify_restored(manifest, staging, file)
        for name in (*(p for p in PARTS if p != "config.toml"), "config.toml"):
            os.rename(staging / name, target / name)
        staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return manifest


def _extract_parts(
    tar: tarfile.TarFile,
    manifest: dict[str, Any],
    staging: Path,
    file: Path,
    progress: Progress,
) -> None:
    parts: dict[str, dict[str, Any]] = manifest["parts"]
    total = sum(int(p["size"]) for p in parts.values())
    done = 0
    seen: set[str] = set()
    for member in tar.getmembers()[1:]:  # [0] is the manifest, already read
        # Only the exact names we wrote, as regular files: no paths, links or devices,
        # so a crafted archive cannot write outside the staging dir.
        if member.name not in parts or member.name in seen or not member.isreg():
            raise BackupError(f"{file}: unexpected member {member.name!r}: not restoring it")
        seen.add(member.name)
        src = tar.extractfile(member)
        assert src is not None
        digest, size = _copy_hashed(src, staging / member.name)
        done += size
        progress("restore", done, total)
        want = parts[member.name]
        if size != int(want["size"]) or digest != want["sha256"]:
            raise BackupError(
                f"{file}: {member.name} does not match its manifest hash: the file is "
                "damaged or was altered; use another copy of the backup"
            )
    missing = set(parts) - seen
    if missing:
        raise BackupError(f"{file} is truncated: {', '.join(sorted(missing))} missing")


def _copy_hashed(src: IO[bytes], dest: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while block := src.read(_CHUNK):
            h.update(block)
            out.write(block)
            size += len(block)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest(), size


def _verify_restored(manifest: dict[str, Any], staging: Path, file: Path) -> None:
    node = manifest.get("node", {})
    try:
        keys = load_keys(staging / "node.key")
        config = parse_config((staging / "config.toml").read_text(encoding="utf-8"))
    except (KeyFileError, ConfigError, UnicodeDecodeError) as exc:
        raise BackupError(f"{file}: restored files are unusable ({exc})") from exc
    if keys.fingerprint != node.get("fingerprint") or config.name != node.get("name"):
        raise BackupError(f"{file}: node.key or config.toml do not match the manifest")
    conn = open_readonly(staging / "node.db")
    try:
        problems = integrity_check(conn)
    finally:
        conn.close()
    if problems != ["ok"]:
        raise BackupError(
            f"{file}: the database fails its integrity check ({'; '.join(problems[:3])})"
        )


@contextlib.contextmanager
def workdir_removed(workdir: Path) -> Iterator[Path]:
    """Remove a snapshot work dir however the backup ends (it holds a key copy)."""
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
