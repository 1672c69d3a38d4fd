"""A member device's profile directory: its keys, its session and its epoch secrets.

Everything secret stays here, in files readable by the owner only (0600, directory
0700): the device's Ed25519 seed and X25519 secret (created on this device, never sent),
the session token, and every epoch secret the device opened. Files are replaced
atomically, so a crash never leaves half a key file.

    DIR/device.json    {"sign_seed": b64u, "agree_secret": b64u}
    DIR/profile.json   {"node_url", "node", "member", "kid", "token", "token_expires_ms"}
    DIR/epochs.json    {forum: {epoch (text): b64u secret}}
    DIR/nodes.json     {node: b64u descriptor}  (keys pinned on first use)

``peerforum client backup`` seals all but the session token under a passphrase
(``backup.py``, specs/profile.md); ``client restore`` writes them into a new directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol.keys import AgreementKey, SigningKey, b64u, unb64u

FILE_MODE = 0o600
DIR_MODE = 0o700


class ProfileError(Exception):
    """The profile directory is missing, incomplete or unreadable."""


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only, atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode does not apply to an existing temp file
        os.write(fd, json.dumps(data, sort_keys=True, indent=1).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ProfileError(f"{path} is missing: enroll this device first") from exc
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(value, dict):
        raise ProfileError(f"{path} is not a JSON object")
    return value


class Profile:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._epochs_cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # ------------------------------------------------------------------ paths

    @property
    def device_path(self) -> Path:
        return self.root / "device.json"

    @property
    def profile_path(self) -> Path:
        return self.root / "profile.json"

    @property
    def epochs_path(self) -> Path:
        return self.root / "epochs.json"

    @property
    def nodes_path(self) -> Path:
        return self.root / "nodes.json"

    def exists(self) -> bool:
        return self.device_path.exists() and self.profile_path.exists()

    # ------------------------------------------------------------------ device keys

    def create_device(self, rng: Callable[[int], bytes]) -> tuple[SigningKey, AgreementKey]:
        """New device keys from ``rng`` (os.urandom in use), written before anything is sent."""
        if self.device_path.exists():
            raise ProfileError(f"{self.device_path} exists: this profile already has a device")
        self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(self.root, DIR_MODE)
        sign, agree = SigningKey(rng(32)), AgreementKey(rng(32))
        write_private(
            self.device_path, {"sign_seed": b64u(sign.seed), "agree_secret": b64u(agree.secret)}
        )
        return sign, agree

    def device(self) -> tuple[SigningKey, AgreementKey]:
        d = _read(self.device_path)
        try:
            return SigningKey(unb64u(d["sign_seed"])), AgreementKey(unb64u(d["agree_secret"]))
        except (KeyError, TypeError, ValueError, Exception) as exc:
            raise ProfileError(f"{self.device_path} holds no valid keys") from exc

    # ------------------------------------------------------------------ session, identity

    def settings(self) -> dict[str, Any]:
        return _read(self.profile_path)

    def save_settings(self, **changes: Any) -> dict[str, Any]:
        current = _read(self.profile_path) if self.profile_path.exists() else {}
        current.update(changes)
        write_private(self.profile_path, current)
        return current

    # ------------------------------------------------------------------ epoch secrets

    def _epochs(self) -> dict[str, Any]:
        """epochs.json, read again only when the file changed: a view opens every entry
        of the log, and each needs its epoch's secret."""
        try:
            st = self.epochs_path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._epochs_cache is None or self._epochs_cache[0] != stamp:
            self._epochs_cache = (stamp, _read(self.epochs_path))
        return self._epochs_cache[1]

    def epoch_secret(self, forum: str, epoch: int) -> bytes | None:
        text = self._epochs().get(forum, {}).get(str(epoch))
        return None if text is None else unb64u(text)

    def epoch_secrets(self) -> dict[str, dict[int, bytes]]:
        """Every epoch secret this device holds, by forum and epoch."""
        return {forum: {int(e): unb64u(t) for e, t in secrets.items()}
                for forum, secrets in self._epochs().items()}  # fmt: skip

    def save_epoch_secret(self, forum: str, epoch: int, secret: bytes) -> None:
        current = _read(self.epochs_path) if self.epochs_path.exists() else {}
        current.setdefault(forum, {})[str(epoch)] = b64u(secret)
        write_private(self.epochs_path, current)

    # ------------------------------------------------------------------ pinned node keys

    def pinned_descriptors(self) -> dict[str, bytes]:
        if not self.nodes_path.exists():
            return {}
        return {k: unb64u(v) for k, v in _read(self.nodes_path).items()}

    def pin_descriptor(self, node: str, data: bytes) -> None:
        current = _read(self.nodes_path) if self.nodes_path.exists() else {}
        current[node] = b64u(data)
        write_private(self.nodes_path, current)
