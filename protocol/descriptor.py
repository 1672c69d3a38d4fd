"""Node identity (specs/protocol.md §4): descriptors, key rotation, member attestations.

A node is named by its host and publishes a descriptor signed by one of its current keys.
A peer pins the key set it approved; a new key is believed only through a rotation
statement signed by the old key (and by the new key, proving possession). A member's home
node vouches for the member's device keys and organization with an attestation.

Time is ``now_ms``/``ts`` and keys are arguments: nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .codec import DEFAULT_LIMITS, Limits
from .errors import ProtocolError, RemoteProtocolError
from .identity import check_node_name, parse_member_id
from .keys import AgreementPublicKey, SigningKey, VerifyKey, sign_object, signing_input
from .schema import MAX_LIST as MAX_LIST
from .schema import MAX_TEXT as MAX_TEXT
from .schema import VERSION as VERSION
from .schema import bad_value, bin_of, bounded_list, check_fields, field, kid, sig, text, uint
from .schema import built_locally as built_locally
from .schema import check_version as check_version
from .schema import load_map as load_map

PROTOCOL: Final = "PFP/1"
MAX_URL: Final = 2048


def _optional(obj: dict[str, Any], name: str) -> str | None:
    """An optional text field is absent, never nil."""
    return text(obj[name], name) if name in obj else None


def _pub(value: object, what: str) -> VerifyKey:
    return VerifyKey(bin_of(value, 32, what))


def _keyed(obj: Any, what: str, extra: Sequence[str] = ()) -> VerifyKey:
    """A wire key entry {kid, key, ...}: the kid must be the key's id."""
    check_fields(obj, ("kid", "key", *extra), what=what)
    key = _pub(obj["key"], f"{what}.key")
    if kid(obj["kid"], f"{what}.kid") != key.key_id:
        raise bad_value(f"{what}.kid", "is not the id of its key")
    return key


# ---------------------------------------------------------------------------- key sets


@dataclass(frozen=True)
class OldKey:
    """A retired node key: it verifies signatures made strictly before ``expired``."""

    key: VerifyKey
    expired: int

    def __post_init__(self) -> None:
        uint(self.expired, "old key expired")


@dataclass(frozen=True)
class KeySet:
    """The keys of one node: what a descriptor publishes and what a peer pins."""

    current: tuple[VerifyKey, ...]
    old: tuple[OldKey, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= len(self.current) <= MAX_LIST or len(self.old) > MAX_LIST:
            raise bad_value("key set", f"needs 1..{MAX_LIST} current and <= {MAX_LIST} old keys")
        kids = [k.key_id for k in self.current] + [o.key.key_id for o in self.old]
        if len(set(kids)) != len(kids):
            raise bad_value("key set", "lists a key twice")

    @classmethod
    def from_wire(cls, obj: dict[str, Any], what: str = "keys") -> KeySet:
        current = tuple(_keyed(e, f"{what}.keys[]") for e in bounded_list(obj, "keys", what))
        old = tuple(
            OldKey(_keyed(e, f"{what}.old_keys[]", ("expired",)), uint(e["expired"], "expired"))
            for e in bounded_list(obj, "old_keys", what, empty=True)
        )
        return cls(current, old)

    def to_wire(self) -> dict[str, Any]:
        return {
            "keys": [{"kid": k.key_id, "key": k.raw} for k in self.current],
            "old_keys": [
                {"kid": o.key.key_id, "key": o.key.raw, "expired": o.expired} for o in self.old
            ],
        }

    def key_valid_at(self, kid: str, ts_ms: int) -> VerifyKey:
        """The key ``kid`` if it may verify a signature made at ``ts_ms``."""
        for key in self.current:
            if key.key_id == kid:
                return key
        for old in self.old:
            if old.key.key_id == kid:
                if ts_ms < old.expired:
                    return old.key
                raise RemoteProtocolError("sig.key_expired", f"{kid} expired at {old.expired}")
        raise RemoteProtocolError("sig.unknown_key", f"no key {kid!r:.40}")


def key_valid_at(keys: KeySet | Descriptor, kid: str, ts_ms: int) -> VerifyKey:
    """Return the key named ``kid`` valid at ``ts_ms``; else sig.unknown_key / sig.key_expired."""
    keyset = keys.keys if isinstance(keys, Descriptor) else keys
    return keyset.key_valid_at(kid, ts_ms)


# ---------------------------------------------------------------------------- descriptor

_DESCRIPTOR_FIELDS = (
    *("v", "name", "keys", "old_keys", "issued", "valid_until", "endpoints", "versions"),
    *("kid", "sig"),
)


@dataclass(frozen=True)
class Descriptor:
    """A node's signed self-description, served at /.well-known/peerforum."""

    name: str
    keys: KeySet
    issued: int
    valid_until: int
    endpoints: dict[str, str]
    versions: tuple[str, ...]
    kid: str
    sig: bytes

    def __post_init__(self) -> None:
        check_node_name(self.name)
        uint(self.issued, "descriptor.issued")
        if uint(self.valid_until, "descriptor.valid_until") < self.issued:
            raise bad_value("descriptor.valid_until", "is before issued")
        if not isinstance(self.endpoints, dict) or not 1 <= len(self.endpoints) <= MAX_LIST:
            raise bad_value("descriptor.endpoints", f"must be a map of 1..{MAX_LIST} urls")
        for name, url in self.endpoints.items():
            where = f"descriptor.endpoints.{text(name, 'descriptor.endpoints key')}"
            if not text(url, where, MAX_URL).startswith(("https://", "http://")):
                raise bad_value(where, "must be an http(s) url")
        if "inbox" not in self.endpoints:
            raise RemoteProtocolError("schema.missing_field", "descriptor.endpoints.inbox")
        if not 1 <= len(self.versions) <= MAX_LIST:
            raise bad_value("descriptor.versions", f"must hold 1..{MAX_LIST} items")
        for version in self.versions:
            text(version, "descriptor.versions[]")
        if PROTOCOL not in self.versions:
            raise RemoteProtocolError("schema.unsupported_version", f"{PROTOCOL} not offered")
        kid(self.kid, "descriptor.kid")
        sig(self.sig, "descriptor.sig")

    @classmethod
    def from_wire(cls, obj: Any) -> Descriptor:
        check_fields(obj, _DESCRIPTOR_FIELDS, what="descriptor")
        check_version(obj, "descriptor")
        versions = field(obj, "versions", list, "descriptor")
        return cls(
            obj["name"], KeySet.from_wire(obj, "descriptor"), obj["issued"], obj["valid_until"],
            field(obj, "endpoints", dict, "descriptor"), tuple(versions), obj["kid"], obj["sig"],
        )  # fmt: skip

    def unsigned(self) -> dict[str, Any]:
        return {
            "v": VERSION, "name": self.name, **self.keys.to_wire(), "issued": self.issued,
            "valid_until": self.valid_until, "endpoints": dict(self.endpoints),
            "versions": list(self.versions), "kid": self.kid,
        }  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": self.sig}


def build_descriptor(
    *,
    name: str,
    key: SigningKey,
    issued: int,
    valid_until: int,
    endpoints: Mapping[str, str],
    keys: KeySet | None = None,
    versions: Sequence[str] = (PROTOCOL,),
    limits: Limits = DEFAULT_LIMITS,
) -> Descriptor:
    """Sign a descriptor with ``key``, which must be one of the current keys."""
    with built_locally():
        keyset = keys if keys is not None else KeySet((key.verify_key,))
        if key.verify_key not in keyset.current:
            raise RemoteProtocolError("sig.unknown_key", "signing key is not a current key")
        if valid_until - issued > limits.max_descriptor_validity_seconds * 1000:
            raise RemoteProtocolError("descriptor.validity_too_long")
        draft = Descriptor(
            name, keyset, issued, valid_until, dict(endpoints), tuple(versions), key.key_id,
            bytes(64),
        )  # fmt: skip
        signed = sign_object("descriptor", draft.unsigned(), key)
        return Descriptor.from_wire(signed)


def verify_descriptor(
    data: bytes | Mapping[str, Any],
    *,
    expected_name: str,
    now_ms: int,
    limits: Limits = DEFAULT_LIMITS,
) -> Descriptor:
    """Steps D1-D7 of §4.3: a descriptor fetched from ``expected_name`` and usable now."""
    desc = Descriptor.from_wire(load_map(data, limits))  # D1
    if desc.name != expected_name:  # D2
        raise RemoteProtocolError(
            "descriptor.name_mismatch", f"{desc.name!r} from {expected_name!r}"
        )
    if desc.valid_until - desc.issued > limits.max_descriptor_validity_seconds * 1000:  # D3
        raise RemoteProtocolError("descriptor.validity_too_long")
    if now_ms > desc.valid_until:  # D4
        raise RemoteProtocolError("descriptor.expired", f"valid until {desc.valid_until}")
    if desc.issued > now_ms + limits.skew_seconds * 1000:  # D5
        raise RemoteProtocolError("descriptor.not_yet_valid", f"issued {desc.issued}")
    # D6: a descriptor speaks for the node now, so only a current key may sign it.
    signer = next((k for k in desc.keys.current if k.key_id == desc.kid), None)
    if signer is None:
        retired = any(o.key.key_id == desc.kid for o in desc.keys.old)
        raise RemoteProtocolError(
            "sig.key_expired" if retired else "sig.unknown_key", "not a current key"
        )
    signer.verify(signing_input("descriptor", desc.unsigned()), desc.sig)  # D7
    return desc


# ---------------------------------------------------------------------------- rotation

_ROTATION_FIELDS = ("v", "node", "old_kid", "old_key", "new_kid", "new_key", "ts", "kid")


@dataclass(frozen=True)
class Rotation:
    """``node`` retires ``old_key`` at ``ts`` in favour of ``new_key``."""

    node: str
    old_key: VerifyKey
    new_key: VerifyKey
    ts: int
    sig: bytes  # by old_key
    new_sig: bytes  # by new_key, over the same bytes: proves possession

    def __post_init__(self) -> None:
        check_node_name(self.node)
        uint(self.ts, "rotation.ts")
        if self.old_key == self.new_key:
            raise bad_value("rotation.new_key", "equals old_key")
        sig(self.sig, "rotation.sig")
        sig(self.new_sig, "rotation.new_sig")

    @classmethod
    def from_wire(cls, obj: Any) -> Rotation:
        check_fields(obj, (*_ROTATION_FIELDS, "sig", "new_sig"), what="rotation")
        check_version(obj, "rotation")
        old = _keyed({"kid": obj["old_kid"], "key": obj["old_key"]}, "rotation.old")
        new = _keyed({"kid": obj["new_kid"], "key": obj["new_key"]}, "rotation.new")
        if kid(obj["kid"], "rotation.kid") != old.key_id:
            raise RemoteProtocolError("rotation.invalid", "not signed by the old key")
        return cls(obj["node"], old, new, obj["ts"], obj["sig"], obj["new_sig"])

    def unsigned(self) -> dict[str, Any]:
        old, new = self.old_key, self.new_key
        return {
            "v": VERSION, "node": self.node, "old_kid": old.key_id, "old_key": old.raw,
            "new_kid": new.key_id, "new_key": new.raw, "ts": self.ts, "kid": old.key_id,
        }  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": self.sig, "new_sig": self.new_sig}


def build_rotation(*, node: str, old: SigningKey, new: SigningKey, ts: int) -> Rotation:
    with built_locally():
        draft = Rotation(node, old.verify_key, new.verify_key, ts, bytes(64), bytes(64))
        message = signing_input("rotation", draft.unsigned())
        return Rotation(
            node, old.verify_key, new.verify_key, ts, old.sign(message), new.sign(message)
        )


def verify_rotation(
    data: bytes | Mapping[str, Any],
    *,
    expected_node: str,
    pinned: KeySet,
    limits: Limits = DEFAULT_LIMITS,
) -> Rotation:
    """Steps R1-R4 of §4.4; any failure after R1 is rotation.invalid."""
    rot = Rotation.from_wire(load_map(data, limits))  # R1
    if rot.node != expected_node:  # R2
        raise RemoteProtocolError("rotation.invalid", f"statement is for {rot.node!r}")
    try:
        if pinned.key_valid_at(rot.old_key.key_id, rot.ts) != rot.old_key:  # R3
            raise RemoteProtocolError("sig.unknown_key")
        message = signing_input("rotation", rot.unsigned())
        rot.old_key.verify(message, rot.sig)  # R4
        rot.new_key.verify(message, rot.new_sig)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError("rotation.invalid", exc.message) from exc
    return rot


def apply_rotation(keys: KeySet, rotation: Rotation) -> KeySet:
    """The pinned key set after a verified ``rotation``: old key retired at its ``ts``."""
    current = tuple(k for k in keys.current if k != rotation.old_key)
    old = keys.old
    if len(current) != len(keys.current):
        old = (*old, OldKey(rotation.old_key, rotation.ts))
    if rotation.new_key not in current:
        current = (*current, rotation.new_key)
    return KeySet(current, tuple(o for o in old if o.key != rotation.new_key))


# ---------------------------------------------------------------------------- attestation

_ATTESTATION_FIELDS = ("v", "node", "member", "org", "devices", "ts", "kid", "sig")


@dataclass(frozen=True)
class Device:
    """A member device: signs with ``sign`` (Ed25519), receives epoch secrets on ``agree``."""

    sign: VerifyKey
    agree: AgreementPublicKey

    @property
    def device_id(self) -> str:
        return self.sign.key_id

    @classmethod
    def from_wire(cls, obj: Any) -> Device:
        check_fields(obj, ("sign", "agree"), what="device")
        return cls(
            _pub(obj["sign"], "device.sign"),
            AgreementPublicKey(bin_of(obj["agree"], 32, "device.agree")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"sign": self.sign.raw, "agree": self.agree.raw}


@dataclass(frozen=True)
class Attestation:
    """The home node ``node`` vouches that ``member`` of ``org`` holds ``devices``."""

    node: str
    member: str
    org: str
    devices: tuple[Device, ...]
    ts: int
    kid: str
    sig: bytes
    title: str | None = None
    industry: str | None = None

    def __post_init__(self) -> None:
        check_node_name(self.node)
        if parse_member_id(self.member)[1] != self.node:
            raise RemoteProtocolError("attestation.invalid", "member is not of the signing node")
        text(self.org, "attestation.org")
        if self.title is not None:
            text(self.title, "attestation.title")
        if self.industry is not None:
            text(self.industry, "attestation.industry")
        if not 1 <= len(self.devices) <= MAX_LIST:
            raise bad_value("attestation.devices", f"must hold 1..{MAX_LIST} devices")
        signs = {d.sign for d in self.devices}
        agrees = {d.agree for d in self.devices}
        if len(signs) != len(self.devices) or len(agrees) != len(self.devices):
            raise bad_value("attestation.devices", "lists a key twice")
        uint(self.ts, "attestation.ts")
        kid(self.kid, "attestation.kid")
        sig(self.sig, "attestation.sig")

    @classmethod
    def from_wire(cls, obj: Any) -> Attestation:
        check_fields(obj, _ATTESTATION_FIELDS, ("title", "industry"), what="attestation")
        check_version(obj, "attestation")
        devices = [Device.from_wire(e) for e in bounded_list(obj, "devices", "attestation")]
        return cls(
            obj["node"], obj["member"], obj["org"], tuple(devices), obj["ts"], obj["kid"],
            obj["sig"], _optional(obj, "title"), _optional(obj, "industry"),
        )  # fmt: skip

    def unsigned(self) -> dict[str, Any]:
        out = {
            "v": VERSION, "node": self.node, "member": self.member, "org": self.org,
            "title": self.title, "industry": self.industry,
            "devices": [d.to_wire() for d in self.devices], "ts": self.ts, "kid": self.kid,
        }  # fmt: skip
        return {k: v for k, v in out.items() if v is not None}

    def to_wire(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": self.sig}


def build_attestation(
    *,
    node: str,
    member: str,
    org: str,
    devices: Sequence[Device],
    ts: int,
    key: SigningKey,
    title: str | None = None,
    industry: str | None = None,
) -> Attestation:
    with built_locally():
        draft = Attestation(
            node, member, org, tuple(devices), ts, key.key_id, bytes(64), title, industry
        )
        return Attestation.from_wire(sign_object("attestation", draft.unsigned(), key))


def verify_attestation(
    data: bytes | Mapping[str, Any],
    *,
    expected_node: str,
    keys: KeySet,
    limits: Limits = DEFAULT_LIMITS,
) -> Attestation:
    """Steps A1-A4 of §4.5: ``keys`` are the pinned keys of ``expected_node``."""
    att = Attestation.from_wire(load_map(data, limits))  # A1
    if att.node != expected_node:  # A2
        raise RemoteProtocolError("attestation.invalid", f"signed by {att.node!r}")
    signer = keys.key_valid_at(att.kid, att.ts)  # A3
    try:
        signer.verify(signing_input("attestation", att.unsigned()), att.sig)  # A4
    except ProtocolError as exc:
        raise RemoteProtocolError("attestation.invalid", exc.message) from exc
    return att
