"""A passphrase-protected backup of a member device's profile (specs/profile.md).

The device's private keys never leave it unencrypted (DESIGN §2): this file holds them
sealed under a key derived from a passphrase with Argon2id, so a lost or wiped device can
be restored as the same device. Besides the keys it holds (unless ``keys_only``) the
profile's epoch secrets and pinned node keys, so the restored device reads what it read
before and keeps trusting exactly the node keys it pinned. Never the session token: a
restored device logs in again with its keys.

    file    = canonical msgpack [FORMAT, VERSION, header, ct]
    header  = {"aead": {"alg": "aes-256-gcm", "nonce": bin 12},
               "check": bin 32,
               "kdf": {"alg": "argon2id", "m_kib": int, "p": int, "salt": bin 16, "t": int}}
    okm     = Argon2id(NFC(passphrase) as UTF-8, salt, t, m_kib, p, length 64)
    key     = okm[:32] (AES-256-GCM), check = okm[32:] (tells a wrong passphrase apart
              from an altered file)
    ct      = AES-256-GCM(key, nonce, plaintext, aad = canonical msgpack [FORMAT, VERSION, header])
    plaintext = canonical msgpack {"created_ms", "device": {"agree_secret", "sign_seed"},
               "epochs": {forum: {epoch: bin 32}}, "nodes": {node: descriptor bytes},
               "profile": {"kid", "member", "node", "node_url"}}

Every parameter needed to open the file is in it (and authenticated), so a file written
with other Argon2 parameters opens with exactly those, within the bounds below.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import shutil
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from protocol.codec import Limits, decode, encode
from protocol.errors import ProtocolError
from protocol.keys import AgreementKey, SigningKey, b64u

from .profile import DIR_MODE, FILE_MODE, Profile, ProfileError, write_private

FORMAT = "peerforum.profile-backup"
VERSION = 1
SALT_BYTES = 16
NONCE_BYTES = 12
MIN_PASSPHRASE_CHARS = 12
# Settings copied from profile.json: the node and who this device is. Listed, not
# filtered, so the session token (and anything added to profile.json later) stays out.
PROFILE_FIELDS = ("node_url", "node", "member", "kid")
# A profile is small (32 bytes per epoch secret, ~1 KiB per pinned node); the protocol's
# 1 MiB object limit is for events, not for this file.
LIMITS = Limits(max_object_bytes=64 * 1024 * 1024)
MAX_FILE_BYTES = LIMITS.max_object_bytes


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: memory in KiB, passes, lanes.

    The default is RFC 9106 §4's second recommended option (64 MiB, 3 passes, 4 lanes),
    meant for when the first option's 2 GiB is too much: a member's laptop or a small VM
    must be able to open its own backup. It takes about half a second on one core here;
    against an offline guesser the passphrase's strength matters more than the cost."""

    m_kib: int = 64 * 1024
    t: int = 3
    p: int = 4

    def check(self) -> None:
        """Within Argon2's own limits and ours: a file cannot make restore allocate or
        spin beyond RFC 9106's first option (2 GiB) or 64 passes / 64 lanes."""
        if not 1 <= self.p <= 64:
            raise BackupError("backup.unsupported", f"argon2id lanes p={self.p} not in 1..64")
        if not 1 <= self.t <= 64:
            raise BackupError("backup.unsupported", f"argon2id passes t={self.t} not in 1..64")
        if not 8 * self.p <= self.m_kib <= 2 * 1024 * 1024:
            raise BackupError(
                "backup.unsupported", f"argon2id memory m={self.m_kib} KiB not in 8*p..2 GiB"
            )


DEFAULT_PARAMS = KdfParams()


class BackupError(Exception):
    """A backup that cannot be written or opened; ``code`` names why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------- the container


def _passphrase_bytes(passphrase: str) -> bytes:
    # NFC: the same passphrase typed on another system (composed or decomposed accents)
    # derives the same key.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> tuple[bytes, bytes]:
    okm = Argon2id(
        salt=salt, length=64, iterations=params.t, lanes=params.p, memory_cost=params.m_kib
    ).derive(_passphrase_bytes(passphrase))
    return okm[:32], okm[32:]


def _aad(header: dict[str, Any]) -> bytes:
    return encode([FORMAT, VERSION, header], LIMITS)


def seal(
    plaintext: dict[str, Any],
    passphrase: str,
    params: KdfParams = DEFAULT_PARAMS,
    rng: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """The backup file's bytes for ``plaintext`` (a canonical-msgpack map)."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise BackupError(
            "backup.weak_passphrase",
            f"the passphrase needs at least {MIN_PASSPHRASE_CHARS} characters: "
            "this file holds your private keys and can be guessed at offline",
        )
    params.check()
    salt, nonce = rng(SALT_BYTES), rng(NONCE_BYTES)
    key, check = _derive(passphrase, salt, params)
    header = {
        "aead": {"alg": "aes-256-gcm", "nonce": nonce},
        "check": check,
        "kdf": {
            "alg": "argon2id",
            "m_kib": params.m_kib,
            "t": params.t,
            "p": params.p,
            "salt": salt,
        },
    }
    ct = AESGCM(key).encrypt(nonce, encode(plaintext, LIMITS), _aad(header))
    return encode([FORMAT, VERSION, header, ct], LIMITS)


@dataclass(frozen=True)
class Parsed:
    header: dict[str, Any]
    params: KdfParams
    salt: bytes
    nonce: bytes
    check: bytes
    ct: bytes


def parse(data: bytes) -> Parsed:
    """The container, checked for shape and bounds (nothing decrypted, no KDF run)."""
    if len(data) > MAX_FILE_BYTES:
        raise BackupError("backup.format", "not a PeerForum profile backup (too large)")
    try:
        value = decode(data, LIMITS)
    except ProtocolError:
        raise BackupError(
            "backup.format",
            "not a PeerForum profile backup, or a damaged one (not canonical msgpack)",
        ) from None
    if not (isinstance(value, list) and len(value) == 4 and value[0] == FORMAT):
        raise BackupError("backup.format", "not a PeerForum profile backup")
    if value[1] != VERSION:
        raise BackupError(
            "backup.unsupported", f"backup format version {value[1]!r}; this client reads {VERSION}"
        )
    header, ct = value[2], value[3]
    try:
        aead, kdf, check = header["aead"], header["kdf"], header["check"]
        if (
            set(header) != {"aead", "check", "kdf"}
            or set(aead) != {"alg", "nonce"}
            or set(kdf) != {"alg", "m_kib", "p", "salt", "t"}
        ):
            raise ValueError("unexpected fields")
        if aead["alg"] != "aes-256-gcm" or kdf["alg"] != "argon2id":
            raise BackupError(
                "backup.unsupported", f"cipher {aead['alg']!r} / KDF {kdf['alg']!r} not supported"
            )
        params = KdfParams(m_kib=kdf["m_kib"], t=kdf["t"], p=kdf["p"])
        if not all(type(x) is int for x in (params.m_kib, params.t, params.p)):
            raise ValueError("argon2id parameters must be integers")
        salt, nonce = kdf["salt"], aead["nonce"]
        if not (
            isinstance(salt, bytes)
            and len(salt) == SALT_BYTES
            and isinstance(nonce, bytes)
            and len(nonce) == NONCE_BYTES
            and isinstance(check, bytes)
            and len(check) == 32
            and isinstance(ct, bytes)
            and len(ct) >= 16
        ):
            raise ValueError("field sizes")
    except BackupError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupError("backup.format", f"damaged backup header ({exc})") from None
    params.check()
    return Parsed(header, params, salt, nonce, check, ct)


def open_sealed(data: bytes, passphrase: str) -> dict[str, Any]:
    """The plaintext map; ``backup.passphrase`` or ``backup.damaged`` when it cannot be."""
    p = parse(data)
    key, check = _derive(passphrase, p.salt, p.params)
    if not hmac.compare_digest(check, p.check):
        raise BackupError(
            "backup.passphrase",
            "wrong passphrase (or the file's key-derivation header was altered)",
        )
    try:
        plain = AESGCM(key).decrypt(p.nonce, p.ct, _aad(p.header))
    except InvalidTag:
        raise BackupError(
            "backup.damaged",
            "the passphrase is right but the file was altered or damaged: "
            "it fails its authentication check; use another copy",
        ) from None
    try:
        value = decode(plain, LIMITS)
    except ProtocolError as exc:  # authenticated, so written by a broken client
        raise BackupError("backup.format", f"backup contents unreadable: {exc}") from None
    if not isinstance(value, dict):
        raise BackupError("backup.format", "backup contents are not a map")
    return value


# ---------------------------------------------------------------------------- profile <-> plaintext


def export_profile(
    profile_dir: Path | str, *, keys_only: bool = False, now_ms: Callable[[], int] | None = None
) -> dict[str, Any]:
    """The plaintext of a backup of ``profile_dir`` (never its session token)."""
    profile = Profile(Path(profile_dir))
    sign, agree = profile.device()
    settings = profile.settings()
    missing = [f for f in PROFILE_FIELDS if not isinstance(settings.get(f), str)]
    if missing:
        raise ProfileError(
            f"{profile.profile_path} lacks {', '.join(missing)}: "
            "enroll (or finish adding) this device first"
        )
    return {
        "created_ms": (now_ms or (lambda: int(time.time() * 1000)))(),
        "device": {"sign_seed": sign.seed, "agree_secret": agree.secret},
        "profile": {f: settings[f] for f in PROFILE_FIELDS},
        "epochs": {}
        if keys_only
        else {
            forum: {str(e): s for e, s in sorted(secrets.items())}
            for forum, secrets in profile.epoch_secrets().items()
        },
        "nodes": {} if keys_only else profile.pinned_descriptors(),
    }


def summary(plain: dict[str, Any]) -> dict[str, Any]:
    prof = plain["profile"]
    return {
        "member": prof["member"],
        "node": prof["node"],
        "kid": prof["kid"],
        "forums": len(plain["epochs"]),
        "epochs": sum(len(v) for v in plain["epochs"].values()),
        "nodes": len(plain["nodes"]),
    }


def _checked(plain: dict[str, Any]) -> tuple[SigningKey, AgreementKey]:
    """The plaintext's shape, and that its keys are the device its profile names."""
    try:
        dev, prof, epochs, nodes = (
            plain["device"],
            plain["profile"],
            plain["epochs"],
            plain["nodes"],
        )
        sign, agree = SigningKey(dev["sign_seed"]), AgreementKey(dev["agree_secret"])
        if not all(isinstance(prof[f], str) for f in PROFILE_FIELDS):
            raise ValueError("profile fields")
        for forum, secrets in epochs.items():
            for epoch, secret in secrets.items():
                if not (epoch.isdigit() and isinstance(secret, bytes) and len(secret) == 32):
                    raise ValueError(f"epoch {forum}/{epoch}")
        if not all(isinstance(d, bytes) for d in nodes.values()):
            raise ValueError("pinned node keys")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackupError("backup.format", f"backup contents malformed ({exc})") from None
    if sign.key_id != prof["kid"]:
        raise BackupError("backup.format", "backup's device key is not the device it names")
    return sign, agree


# ---------------------------------------------------------------------------- files


def check_out(out: Path, force: bool) -> None:
    if out.is_dir():
        raise BackupError("backup.exists", f"{out} is a directory: name the backup file")
    if out.exists() and not force:
        raise BackupError(
            "backup.exists", f"{out} exists: choose another name, or pass --force to replace it"
        )
    if not out.parent.is_dir():
        raise BackupError("backup.exists", f"{out.parent} does not exist: create it first")


def write_file(out: Path, data: bytes, force: bool = False) -> None:
    """Write ``data`` at ``out``, 0600 from creation, appearing only when complete:
    written beside it, then linked into place (never over an existing file) or, with
    ``force``, renamed over it."""
    check_out(out, force)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{b64u(os.urandom(6))}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise BackupError(
                    "backup.exists", f"{out} exists: choose another name, or pass --force"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def backup_profile(
    profile_dir: Path | str,
    out: Path | str,
    passphrase: str,
    *,
    params: KdfParams = DEFAULT_PARAMS,
    force: bool = False,
    keys_only: bool = False,
    rng: Callable[[int], bytes] = os.urandom,
) -> dict[str, Any]:
    """Write the backup of ``profile_dir`` to ``out``; what it holds (counts only)."""
    out = Path(out)
    check_out(out, force)
    plain = export_profile(profile_dir, keys_only=keys_only)
    write_file(out, seal(plain, passphrase, params, rng), force)
    return {
        "file": str(out),
        **summary(plain),
        "kdf": {"alg": "argon2id", "m_kib": params.m_kib, "t": params.t, "p": params.p},
    }


def check_target(target: Path) -> None:
    """Restore only into a new or empty directory: never over another device's keys."""
    if target.exists() and not target.is_dir():
        raise BackupError("backup.target", f"{target} is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise BackupError(
            "backup.target", f"{target} is not empty: restore into a new or empty directory"
        )


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore-{os.getpid()}-{b64u(os.urandom(6))}")
    tmp.mkdir(mode=DIR_MODE)
    try:
        os.chmod(tmp, DIR_MODE)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def restore_profile(
    backup_file: Path | str, profile_dir: Path | str, passphrase: str
) -> dict[str, Any]:
    """Open ``backup_file`` and write its profile into ``profile_dir`` (new or empty).

    The files are written into a 0700 directory beside the target and renamed onto it,
    so the target is either untouched or complete. The session token is absent: the
    first call logs in with the restored keys."""
    target = Path(profile_dir)
    check_target(target)
    try:
        data = Path(backup_file).read_bytes()
    except OSError as exc:
        raise BackupError("backup.format", f"cannot read {backup_file}: {exc}") from None
    plain = open_sealed(data, passphrase)
    sign, agree = _checked(plain)
    with _staging(target) as tmp:
        write_private(
            tmp / "device.json", {"sign_seed": b64u(sign.seed), "agree_secret": b64u(agree.secret)}
        )
        write_private(
            tmp / "profile.json", {**plain["profile"], "token": None, "token_expires_ms": None}
        )
        if plain["epochs"]:
            write_private(
                tmp / "epochs.json",
                {
                    forum: {e: b64u(s) for e, s in secrets.items()}
                    for forum, secrets in plain["epochs"].items()
                },
            )
        if plain["nodes"]:
            write_private(tmp / "nodes.json", {n: b64u(d) for n, d in plain["nodes"].items()})
        Profile(tmp).device()  # reads back what was written
        check_target(target)
        try:
            os.rename(tmp, target)  # onto an empty directory, or a new name
        except OSError as exc:
            raise BackupError("backup.target", f"cannot restore into {target}: {exc}") from None
    return {"profile": str(target), **summary(plain)}
