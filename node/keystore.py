"""The node's signing keys on disk (``node.key``).

One JSON file, mode 0600: the current Ed25519 seed and the public halves of retired keys
with the time each expired. Retired seeds are deliberately dropped: peers only need the
old public keys to check what we signed in the past, and a stolen key file must not let
anyone sign as an old key. Writes go to a temporary file that is fsync'ed and renamed, so
a crash never leaves a half-written key.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from protocol.keys import SigningKey, VerifyKey, fingerprint, key_id

FORMAT_VERSION = 1


class KeyFileError(Exception):
    """node.key is missing, unreadable or malformed."""


@dataclass(frozen=True)
class RetiredKey:
    public: bytes
    created_ms: int
    expired_ms: int

    @property
    def kid(self) -> str:
        return key_id(self.public)


@dataclass(frozen=True)
class NodeKeys:
    current: SigningKey
    created_ms: int
    retired: tuple[RetiredKey, ...] = field(default=())

    @property
    def kid(self) -> str:
        return self.current.key_id

    @property
    def verify_key(self) -> VerifyKey:
        return self.current.verify_key

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.current.verify_key.raw)


def generate_keys(rng: Callable[[int], bytes], now_ms: int) -> NodeKeys:
    return NodeKeys(current=SigningKey(rng(32)), created_ms=now_ms)


def rotate_keys(keys: NodeKeys, rng: Callable[[int], bytes], now_ms: int) -> NodeKeys:
    """A new current key; the old one is retired, expiring now."""
    old = RetiredKey(keys.verify_key.raw, keys.created_ms, now_ms)
    return NodeKeys(SigningKey(rng(32)), now_ms, (*keys.retired, old))


def _to_json(keys: NodeKeys) -> str:
    doc = {
        "v": FORMAT_VERSION,
        "current": {"seed": keys.current.seed.hex(), "created_ms": keys.created_ms},
        "retired": [
            {"public": r.public.hex(), "created_ms": r.created_ms, "expired_ms": r.expired_ms}
            for r in keys.retired
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def save_keys(path: Path, keys: NodeKeys) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _to_json(keys).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_keys(path: Path) -> NodeKeys:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: no such file (run `peerforum init` first)") from exc
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: cannot read the key file ({exc})") from exc
    try:
        if doc["v"] != FORMAT_VERSION:
            raise KeyFileError(f"{path}: unsupported key file version {doc['v']!r}")
        current = SigningKey(bytes.fromhex(doc["current"]["seed"]))
        retired = tuple(
            RetiredKey(bytes.fromhex(r["public"]), int(r["created_ms"]), int(r["expired_ms"]))
            for r in doc["retired"]
        )
        return NodeKeys(current, int(doc["current"]["created_ms"]), retired)
    except KeyFileError:
        raise
    except Exception as exc:  # any shape problem: say which file, never print its content
        raise KeyFileError(f"{path}: malformed key file ({type(exc).__name__})") from exc


def permission_warning(path: Path) -> str | None:
    """A warning when the key file is readable by group or others, else None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            f"anyone who reads it can sign as this node: run `chmod 600 {path}`"
        )
    return None
