"""Keys, key ids, fingerprints and domain-separated signatures (specs/protocol.md §3).

Randomness is an argument: keys are built from 32-byte seeds the caller supplies.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .codec import encode
from .errors import LocalProtocolError, RemoteProtocolError

SIGNATURE_PREFIX = b"PFP/1\x00"
SIG_FIELD = "sig"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64u(data: bytes) -> str:
    """URL-safe base64 without padding (used for ids shown in text)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise RemoteProtocolError("schema.bad_value", "not base64url") from exc


def key_id(public: bytes) -> str:
    """Stable short id of a public key: 'k' + 16 hex digits of SHA-256(key)."""
    return "k" + sha256(public)[:8].hex()


def fingerprint(public: bytes) -> str:
    """Human-checkable fingerprint: 128 bits of SHA-256(key) as 8 groups of 4 hex digits."""
    h = sha256(public)[:16].hex().upper()
    return " ".join(h[i : i + 4] for i in range(0, 32, 4))


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise RemoteProtocolError("identity.bad_key", "Ed25519 public key must be 32 bytes")

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise ``sig.invalid`` unless ``signature`` is valid for ``message``."""
        if not isinstance(signature, bytes) or len(signature) != 64:
            raise RemoteProtocolError("sig.invalid", "signature must be 64 bytes")
        try:
            nacl.signing.VerifyKey(self.raw).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError) as exc:
            raise RemoteProtocolError("sig.invalid") from exc


class SigningKey:
    """An Ed25519 private key, built from a 32-byte seed."""

    __slots__ = ("_key", "seed", "verify_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise LocalProtocolError("identity.bad_key", "Ed25519 seed must be 32 bytes")
        self.seed = seed
        self._key = nacl.signing.SigningKey(seed)
        self.verify_key = VerifyKey(bytes(self._key.verify_key))

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey({self.key_id})"


@dataclass(frozen=True)
class AgreementPublicKey:
    """An X25519 public key (receives sealed epoch secrets)."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise RemoteProtocolError("identity.bad_key", "X25519 public key must be 32 bytes")

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    def to_cryptography(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


class AgreementKey:
    """An X25519 private key, built from a 32-byte secret."""

    __slots__ = ("_key", "public", "secret")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise LocalProtocolError("identity.bad_key", "X25519 secret must be 32 bytes")
        self.secret = secret
        self._key = X25519PrivateKey.from_private_bytes(secret)
        self.public = AgreementPublicKey(
            self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )

    def to_cryptography(self) -> X25519PrivateKey:
        return self._key

    def __repr__(self) -> str:
        return f"AgreementKey({self.public.key_id})"


def signing_input(domain: str, unsigned: dict[str, Any]) -> bytes:
    """Bytes an object's signature covers: prefix, domain, NUL, canonical encoding."""
    return SIGNATURE_PREFIX + domain.encode("ascii") + b"\x00" + encode(unsigned)


def sign_object(domain: str, unsigned: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Return ``unsigned`` plus a ``sig`` field over its signing input."""
    if SIG_FIELD in unsigned:
        raise LocalProtocolError("schema.bad_value", "object is already signed")
    signed = dict(unsigned)
    signed[SIG_FIELD] = key.sign(signing_input(domain, unsigned))
    return signed


def verify_object(domain: str, signed: dict[str, Any], key: VerifyKey) -> dict[str, Any]:
    """Check ``signed[sig]`` and return the object without it."""
    sig = signed.get(SIG_FIELD)
    if not isinstance(sig, bytes):
        raise RemoteProtocolError("schema.wrong_type", "sig must be bin")
    unsigned = {k: v for k, v in signed.items() if k != SIG_FIELD}
    key.verify(signing_input(domain, unsigned), sig)
    return unsigned
