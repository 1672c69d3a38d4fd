"""The data directory: where a node keeps everything it owns.

    config.toml   settings (node/config.py)
    node.key      signing keys, 0600 (node/keystore.py)
    admin.token   bearer token of the local admin API, 0600
    node.db       SQLite database (node/storage/)
    node.lock     held (flock) by the running ``serve``; tells the CLI a node is up

Backing up a node is copying this directory while it is stopped (or node.db with the
SQLite backup API while it runs).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .config import NodeConfig, load_config, render_default_config, write_default_config
from .keystore import generate_keys, save_keys


class DataDirError(Exception):
    """The data directory is missing, incomplete or in use."""


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def key(self) -> Path:
        return self.root / "node.key"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin.token"

    @property
    def db(self) -> Path:
        return self.root / "node.db"

    @property
    def lock(self) -> Path:
        return self.root / "node.lock"

    def exists(self) -> bool:
        return self.config.exists()

    def load_config(self) -> NodeConfig:
        return load_config(self.config)

    def read_admin_token(self) -> str:
        try:
            return self.admin_token.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise DataDirError(f"{self.admin_token}: cannot read ({exc.strerror})") from exc

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the data dir unless absolute."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def init_data_dir(
    root: Path, name: str, listen: str, rng: Callable[[int], bytes], now_ms: int
) -> DataDir:
    """Create a new node's data dir. Refuses to touch a dir that already holds a node.

    The config is written last: a dir counts as initialized only once config.toml exists,
    so an interrupted init can simply be re-run after removing the partial files.
    """
    data = DataDir(root)
    if data.exists():
        raise DataDirError(f"{root} already holds a node (config.toml exists)")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for leftover in (data.key, data.admin_token):
        if leftover.exists():
            raise DataDirError(f"{leftover} exists from an earlier, unfinished init: remove it")
    render_default_config(name, listen)  # validate before writing anything
    save_keys(data.key, generate_keys(rng, now_ms))
    _write_secret(data.admin_token, secrets.token_urlsafe(32) + "\n")
    write_default_config(data.config, name, listen)
    return data


class NodeLock:
    """An exclusive flock on node.lock while a node serves this data dir."""

    def __init__(self, data: DataDir) -> None:
        self._path = data.lock
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(self._path, "a+", encoding="ascii")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            f.close()
            raise DataDirError(
                f"another node is already serving {self._path.parent}: stop it first"
            ) from exc
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def is_serving(data: DataDir) -> bool:
    """True when a running node holds the data dir's lock."""
    if not data.lock.exists():
        return False
    with open(data.lock, encoding="ascii") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False
