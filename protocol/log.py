"""The forum log: signed events, hub-sequenced entries, heads, proofs (PFP/1 §6).

Normative text: specs/protocol.md §6. A member device signs an *event*; the hub
wraps its exact bytes in an *entry* that chains to the previous entry's hash and signs it.
Nodes cosign the *heads* they verified; two hub signatures for one ``seq`` with different
hashes are an *equivocation proof* anyone can check offline. (A quorum of members can move
the hub with a *hub move certificate*: ``protocol.hubmove``.)

Everything here is pure: keys and times are arguments, and verifying never consults state
beyond the keys it is given (the forum's rules live in ``protocol.rules``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

from .codec import DEFAULT_LIMITS, Value, encode
from .errors import LocalProtocolError, RemoteProtocolError

# The hub move moved to protocol.hubmove and forum ids to protocol.identity; the names stay
# importable from here (``X as X`` marks a re-export for mypy --strict).
from .hubmove import HubMoveCertificate as HubMoveCertificate
from .hubmove import HubMoveSignature as HubMoveSignature
from .hubmove import HubMoveStatement as HubMoveStatement
from .hubmove import build_hub_move as build_hub_move
from .hubmove import sign_hub_move as sign_hub_move
from .hubmove import verify_hub_move as verify_hub_move
from .identity import check_forum_id as check_forum_id
from .identity import check_node_name, parse_member_id
from .identity import forum_origin as forum_origin
from .identity import make_forum_id as make_forum_id
from .keys import SIGNATURE_PREFIX, SigningKey, VerifyKey, sha256, sign_object, signing_input
from .schema import VERSION as VERSION
from .schema import check_fields, check_version, decode_map, fixed_bytes, kid, non_negative
from .schema import field as get
from .schema import sig as check_sig

ZERO_HASH: Final = bytes(32)  # ``prev`` of the entry with seq 1
NONCE_BYTES: Final = 16
_TYPE_RE = re.compile(r"^[a-z][a-z0-9.-]{0,63}$")


# ---------------------------------------------------------------------------- signing input


# Signatures already checked: (domain, public key, SHA-256 of the exact signed bytes). The
# hash commits to the message and the signature, so a hit is the same check, passed. A hub
# move's refold, a restart without a snapshot and a client folding the log again would
# otherwise pay ~70 us of Ed25519 per event and entry each time. Bounded; successes only.
_VERIFIED: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()
VERIFIED_CACHE_SIZE: Final = 16384


def _verify(
    domain: str, wire: dict[str, Any], key: VerifyKey, code: str, raw: bytes = b"",
    signed_hash: bytes = b"",
) -> None:  # fmt: skip
    """``signed_hash``: SHA-256 of ``raw`` (an id the caller has), enables the cache."""
    memo = (domain, key.raw, signed_hash)
    if signed_hash and memo in _VERIFIED:
        return
    try:
        key.verify(_unsigned_input(domain, wire, raw), wire["sig"])
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(code, f"{domain} signature does not verify") from exc
    if signed_hash:
        _remember(_VERIFIED, memo, VERIFIED_CACHE_SIZE)


def _remember(cache: OrderedDict[Any, Any], key: Any, size: int, value: Any = None) -> None:
    """Insert into a bounded cache, dropping the oldest entries (insertion order). An
    OrderedDict: finding a plain dict's oldest key scans past every slot deleted before
    it, which made this a few percent of a replica's time."""
    cache[key] = value
    while len(cache) > size:
        try:
            cache.popitem(last=False)
        except KeyError:  # another thread emptied it first
            break


def _unsigned_input(domain: str, wire: dict[str, Any], raw: bytes) -> bytes:
    """The signing input, cut from ``raw`` (the canonical signed encoding) when we have it.

    A canonical map is its header and then its pairs in key order, so the unsigned form is
    ``raw`` less the ``sig`` pair, counted one fewer. Only the fields ``ts``, ``type`` and
    ``v`` sort after ``sig`` in these formats, and none can hold that 69-byte pair, so its
    last occurrence is the field itself. Saves re-encoding on the hub's hot path.
    """
    pair = b"\xa3sig\xc4\x40" + wire["sig"]
    at = raw.rfind(pair) if raw and 0x81 <= raw[0] <= 0x8F else -1
    if at > 0 and at + len(pair) <= len(raw):
        prefix = b"PFP/1\x00" + domain.encode("ascii") + b"\x00"
        return prefix + bytes((raw[0] - 1,)) + raw[1:at] + raw[at + len(pair) :]
    return signing_input(domain, {k: v for k, v in wire.items() if k != "sig"})


# ---------------------------------------------------------------------------- events

_EVENT_FIELDS: Final = ("v", "forum", "type", "author", "kid", "ts", "nonce", "epoch", "body")


@dataclass(frozen=True)
class Event:
    """A member's signed event. ``raw`` is its exact encoding (computed when omitted)."""

    forum: str
    type: str
    author: str
    kid: str  # key id of the author's device signing key
    ts: int
    nonce: bytes
    epoch: int
    body: dict[str, Any]
    sig: bytes
    # The exact encoding; computed when omitted. Only decoding passes it in (``_read``).
    raw: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        wire = self.to_wire()
        _check_event_map(wire)
        if not self.raw:
            object.__setattr__(self, "raw", encode(wire))
        if len(self.raw) > DEFAULT_LIMITS.max_event_bytes:
            raise RemoteProtocolError("event.too_large", f"{len(self.raw)} bytes")

    @cached_property
    def event_id(self) -> bytes:
        """SHA-256 of the encoded signed event (computed once: the hub asks several times)."""
        return sha256(self.raw)

    @classmethod
    def from_wire(cls, obj: Any) -> Event:
        return cls._read(obj, b"")

    @classmethod
    def _read(cls, obj: Any, raw: bytes) -> Event:
        """``raw``, when given, is the exact bytes ``obj`` was strictly decoded from."""
        m = check_fields(obj, (*_EVENT_FIELDS, "sig"), what="event")
        check_version(m, "event")
        return cls(
            forum=m["forum"], type=m["type"], author=m["author"], kid=m["kid"], ts=m["ts"],
            nonce=m["nonce"], epoch=m["epoch"], body=m["body"], sig=m["sig"], raw=raw,
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> Event:
        if type(data) is bytes and (hit := _DECODED.get(data)) is not None:
            return hit
        if isinstance(data, bytes) and len(data) > DEFAULT_LIMITS.max_event_bytes:
            raise RemoteProtocolError("event.too_large", f"{len(data)} bytes")
        ev = cls._read(decode_map(data, "event"), data)
        if type(data) is bytes and len(data) <= DECODED_CACHE_MAX_EVENT:
            _remember(_DECODED, data, DECODED_CACHE_SIZE, ev)
        return ev

    def to_wire(self) -> dict[str, Value]:
        return {
            "v": VERSION, "forum": self.forum, "type": self.type, "author": self.author,
            "kid": self.kid, "ts": self.ts, "nonce": self.nonce, "epoch": self.epoch,
            "body": self.body, "sig": self.sig,
        }  # fmt: skip

    def header(self) -> dict[str, Value]:
        """The cleartext header (event minus body and sig): AAD of sealed content."""
        w = self.to_wire()
        del w["body"], w["sig"]
        return w


# Events decoded lately, by their exact bytes. One submission is decoded by the client
# route, the engine, ``append_entry`` and the new ``Entry``: the same bytes each time, so
# three of four strict decodes (a third of a hub's CPU per entry) become a lookup. Events
# are immutable and decoding is a pure function of the bytes, so sharing one is safe.
# Bounded in count and by skipping big events: at most ~1,024 x 4 KiB of bytes held.
_DECODED: OrderedDict[bytes, Event] = OrderedDict()
DECODED_CACHE_SIZE: Final = 1024
DECODED_CACHE_MAX_EVENT: Final = 4096


def _check_event_map(m: dict[str, Any]) -> None:
    check_forum_id(get(m, "forum", str, "event"))
    if not _TYPE_RE.fullmatch(get(m, "type", str, "event")):
        raise RemoteProtocolError("schema.bad_value", "event.type is not a type name")
    parse_member_id(m.get("author"))
    kid(m.get("kid"), "event.kid")
    non_negative(m, "ts", "event")
    fixed_bytes(m, "nonce", NONCE_BYTES, "event")
    non_negative(m, "epoch", "event")
    get(m, "body", dict, "event")
    check_sig(m["sig"], "event")


def build_event(
    *,
    forum: str,
    type: str,
    author: str,
    device_key: SigningKey,
    ts: int,
    nonce: bytes,
    epoch: int,
    body: Mapping[str, Value],
) -> Event:
    """Sign an event with the author's device key (domain ``event``)."""
    unsigned = {
        "v": VERSION, "forum": forum, "type": type, "author": author,
        "kid": device_key.key_id, "ts": ts, "nonce": nonce, "epoch": epoch, "body": dict(body),
    }  # fmt: skip
    signed = sign_object("event", unsigned, device_key)
    raw = encode(signed)
    if len(raw) > DEFAULT_LIMITS.max_event_bytes:
        raise LocalProtocolError("event.too_large", f"{len(raw)} bytes")
    return Event._read(signed, raw)


def verify_event(event: Event, device_key: VerifyKey) -> None:
    """``sig.unknown_key`` if ``device_key`` is not ``event.kid``; ``sig.invalid`` if bad."""
    if device_key.key_id != event.kid:
        raise RemoteProtocolError("sig.unknown_key", f"event kid {event.kid} is another key")
    _verify("event", event.to_wire(), device_key, "sig.invalid", event.raw, event.event_id)


# ---------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class Entry:
    """A hub-signed log entry. ``signed_event`` is ``event`` decoded and checked."""

    forum: str
    seq: int
    prev: bytes
    event: bytes  # the encoded signed event, exactly as its author signed it
    ts: int
    hub: str
    kid: str
    sig: bytes
    raw: bytes = field(default=b"", compare=False, repr=False)
    signed_event: Event = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        wire = self.to_wire()
        _check_entry_map(wire)
        if not self.raw:
            object.__setattr__(self, "raw", encode(wire))
        ev = Event.from_bytes(self.event)
        if ev.forum != self.forum:
            raise RemoteProtocolError("event.wrong_forum", "entry and its event name other forums")
        object.__setattr__(self, "signed_event", ev)

    @cached_property
    def hash(self) -> bytes:
        """entry_hash: SHA-256 of the encoded signed entry (computed once)."""
        return sha256(self.raw)

    @classmethod
    def from_wire(cls, obj: Any) -> Entry:
        return cls._read(obj, b"")

    @classmethod
    def _read(cls, obj: Any, raw: bytes) -> Entry:
        """``raw``, when given, is the exact bytes ``obj`` was strictly decoded from."""
        m = check_fields(obj, ("v", "forum", "seq", "prev", "event", "ts", "hub", "kid", "sig"),
                         what="entry")  # fmt: skip
        check_version(m, "entry")
        return cls(
            forum=m["forum"], seq=m["seq"], prev=m["prev"], event=m["event"], ts=m["ts"],
            hub=m["hub"], kid=m["kid"], sig=m["sig"], raw=raw,
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> Entry:
        return cls._read(decode_map(data, "entry"), data)

    def to_wire(self) -> dict[str, Value]:
        return {
            "v": VERSION, "forum": self.forum, "seq": self.seq, "prev": self.prev,
            "event": self.event, "ts": self.ts, "hub": self.hub, "kid": self.kid, "sig": self.sig,
        }  # fmt: skip


def _check_entry_map(m: dict[str, Any]) -> None:
    check_forum_id(get(m, "forum", str, "entry"))
    if non_negative(m, "seq", "entry") < 1:
        raise RemoteProtocolError("schema.bad_value", "entry.seq must be >= 1")
    fixed_bytes(m, "prev", 32, "entry")
    get(m, "event", bytes, "entry")
    non_negative(m, "ts", "entry")
    check_node_name(get(m, "hub", str, "entry"))
    kid(m.get("kid"), "entry.kid")
    check_sig(m["sig"], "entry")


def append_entry(
    prev_entry_hash: bytes,
    seq: int,
    event_bytes: bytes,
    hub_key: SigningKey,
    hub_name: str,
    ts: int,
) -> Entry:
    """Sequence ``event_bytes`` as entry ``seq`` after ``prev_entry_hash`` (pure)."""
    ev = Event.from_bytes(event_bytes)
    if (seq == 1) != (prev_entry_hash == ZERO_HASH):
        raise LocalProtocolError("entry.broken_chain", "prev is 32 zero bytes exactly at seq 1")
    unsigned = {
        "v": VERSION, "forum": ev.forum, "seq": seq, "prev": prev_entry_hash,
        "event": event_bytes, "ts": ts, "hub": hub_name, "kid": hub_key.key_id,
    }  # fmt: skip
    body = encode(unsigned)
    sig = hub_key.sign(SIGNATURE_PREFIX + b"entry\x00" + body)
    signed = {**unsigned, "sig": sig}
    return Entry._read(signed, _with_sig(body, sig, ts) or encode(signed))


def _with_sig(unsigned: bytes, sig: bytes, ts: int) -> bytes | None:
    """The signed entry's encoding, spliced from the unsigned one (``_unsigned_input``
    reversed): ``sig`` sorts between ``seq`` and ``ts``, so the signed map is the same
    pairs, one more in the header, with ``sig`` just before the ``ts`` and ``v`` pairs.
    Saves encoding the entry twice; None (encode it) if the bytes are not as expected."""
    tail = b"\xa2ts" + encode(ts) + b"\xa1v" + encode(VERSION)
    if unsigned[:1] != b"\x88" or not unsigned.endswith(tail):
        return None
    cut = len(unsigned) - len(tail)
    return b"\x89" + unsigned[1:cut] + b"\xa3sig\xc4\x40" + sig + unsigned[cut:]


def verify_entry(
    entry: Entry, hub_key: VerifyKey, *, seq: int | None = None, prev: bytes | None = None
) -> None:
    """Check the hub's signature and, when given, the expected ``seq`` and ``prev``."""
    if seq is not None and entry.seq != seq:
        raise RemoteProtocolError("entry.bad_seq", f"expected seq {seq}, got {entry.seq}")
    if prev is not None and entry.prev != prev:
        raise RemoteProtocolError("entry.broken_chain", f"seq {entry.seq} does not chain")
    if hub_key.key_id != entry.kid:
        raise RemoteProtocolError("sig.unknown_key", f"entry kid {entry.kid} is another key")
    _verify("entry", entry.to_wire(), hub_key, "sig.invalid", entry.raw, entry.hash)


def preverify(checks: Iterable[tuple[Entry | Event, VerifyKey | None]]) -> int:
    """Check, ahead of the ordered checks, the signatures of entries (with their hub's
    key) and events (with their device's key); each one that verifies is remembered where
    ``verify_entry`` and ``verify_event`` look first. A caller may run this over a batch
    on another thread (pynacl lets go of the GIL while it verifies). Nothing is decided
    here: a signature that does not verify, or a key that is not the one named, is
    skipped, and the ordered check raises it in its place. Returns how many verified."""
    verified = 0
    for obj, key in checks:
        if key is None or key.key_id != obj.kid:
            continue
        if isinstance(obj, Entry):
            domain, signed_hash = "entry", obj.hash
        else:
            domain, signed_hash = "event", obj.event_id
        try:
            _verify(domain, obj.to_wire(), key, "sig.invalid", obj.raw, signed_hash)
        except RemoteProtocolError:
            continue
        verified += 1
    return verified


# ---------------------------------------------------------------------------- heads


@dataclass(frozen=True)
class Head:
    """The hub's signed statement that entry ``seq`` of ``forum`` has hash ``hash``."""

    forum: str
    seq: int
    hash: bytes
    ts: int
    hub: str
    kid: str
    sig: bytes

    def __post_init__(self) -> None:
        m = self.to_wire()
        _check_point(m, "head")
        check_node_name(get(m, "hub", str, "head"))

    @classmethod
    def from_wire(cls, obj: Any) -> Head:
        m = check_fields(obj, ("v", "forum", "seq", "hash", "ts", "hub", "kid", "sig"), what="head")
        check_version(m, "head")
        return cls(m["forum"], m["seq"], m["hash"], m["ts"], m["hub"], m["kid"], m["sig"])

    @classmethod
    def from_bytes(cls, data: bytes) -> Head:
        return cls.from_wire(decode_map(data, "head"))

    def to_wire(self) -> dict[str, Value]:
        return {
            "v": VERSION, "forum": self.forum, "seq": self.seq, "hash": self.hash,
            "ts": self.ts, "hub": self.hub, "kid": self.kid, "sig": self.sig,
        }  # fmt: skip


@dataclass(frozen=True)
class Cosignature:
    """A node's signed statement that it verified the chain up to ``seq`` / ``hash``."""

    forum: str
    seq: int
    hash: bytes
    node: str
    ts: int
    kid: str
    sig: bytes

    def __post_init__(self) -> None:
        m = self.to_wire()
        _check_point(m, "cosignature")
        check_node_name(get(m, "node", str, "cosignature"))

    @classmethod
    def from_wire(cls, obj: Any) -> Cosignature:
        names = ("v", "forum", "seq", "hash", "node", "ts", "kid", "sig")
        m = check_fields(obj, names, what="cosignature")
        check_version(m, "cosignature")
        return cls(m["forum"], m["seq"], m["hash"], m["node"], m["ts"], m["kid"], m["sig"])

    def to_wire(self) -> dict[str, Value]:
        return {
            "v": VERSION, "forum": self.forum, "seq": self.seq, "hash": self.hash,
            "node": self.node, "ts": self.ts, "kid": self.kid, "sig": self.sig,
        }  # fmt: skip


def _check_point(m: dict[str, Any], what: str) -> None:
    check_forum_id(get(m, "forum", str, what))
    if non_negative(m, "seq", what) < 1:
        raise RemoteProtocolError("schema.bad_value", f"{what}.seq must be >= 1")
    fixed_bytes(m, "hash", 32, what)
    non_negative(m, "ts", what)
    kid(m.get("kid"), f"{what}.kid")
    check_sig(m["sig"], what)


def build_head(
    forum: str, seq: int, entry_hash: bytes, hub_key: SigningKey, hub_name: str, ts: int
) -> Head:
    unsigned = {"v": VERSION, "forum": forum, "seq": seq, "hash": entry_hash, "ts": ts,
                "hub": hub_name, "kid": hub_key.key_id}  # fmt: skip
    return Head.from_wire(sign_object("head", unsigned, hub_key))


def verify_head(head: Head, hub_key: VerifyKey) -> None:
    """``head.invalid`` unless ``hub_key`` (named by ``head.kid``) signed ``head``."""
    if hub_key.key_id != head.kid:
        raise RemoteProtocolError("head.invalid", f"head kid {head.kid} is another key")
    _verify("head", head.to_wire(), hub_key, "head.invalid")


def cosign_head(head: Head, node_key: SigningKey, node_name: str, ts: int) -> Cosignature:
    """Cosign a head this node has verified (callers verify the chain first)."""
    unsigned = {"v": VERSION, "forum": head.forum, "seq": head.seq, "hash": head.hash,
                "node": node_name, "ts": ts, "kid": node_key.key_id}  # fmt: skip
    return Cosignature.from_wire(sign_object("cosign", unsigned, node_key))


def verify_cosignature(cosig: Cosignature, node_key: VerifyKey, head: Head | None = None) -> None:
    """``head.invalid`` unless ``node_key`` signed ``cosig`` (for ``head``, when given)."""
    if head is not None and (cosig.forum, cosig.seq, cosig.hash) != (
        head.forum,
        head.seq,
        head.hash,
    ):
        raise RemoteProtocolError("head.invalid", "cosignature is for another head")
    if node_key.key_id != cosig.kid:
        raise RemoteProtocolError("head.invalid", f"cosignature kid {cosig.kid} is another key")
    _verify("cosign", cosig.to_wire(), node_key, "head.invalid")


# ---------------------------------------------------------------------------- equivocation

Signed = Entry | Head


@dataclass(frozen=True)
class EquivocationProof:
    """Two hub-signed items (entries or heads) for one forum and seq with different hashes.

    Carries the hub's public ``key`` so it can be checked offline, with no other state.
    """

    forum: str
    seq: int
    hub: str
    key: bytes
    items: tuple[tuple[str, bytes], tuple[str, bytes]]  # (kind, encoded signed item)

    def __post_init__(self) -> None:
        check_forum_id(self.forum)
        check_node_name(self.hub)
        VerifyKey(self.key)
        if type(self.seq) is not int or self.seq < 1 or len(self.items) != 2:
            raise RemoteProtocolError("schema.bad_value", "proof needs seq >= 1 and two items")
        for kind, data in self.items:
            if kind not in ("entry", "head") or not isinstance(data, bytes):
                raise RemoteProtocolError("schema.bad_value", "proof item is {kind, data:bin}")

    @classmethod
    def from_wire(cls, obj: Any) -> EquivocationProof:
        m = check_fields(obj, ("v", "forum", "seq", "hub", "key", "items"), what="proof")
        check_version(m, "proof")
        raw_items = get(m, "items", list, "proof")
        if len(raw_items) != 2:
            raise RemoteProtocolError("schema.bad_value", "proof.items must hold two items")
        items = []
        for it in raw_items:
            i = check_fields(it, ("kind", "data"), what="proof item")
            items.append((get(i, "kind", str, "proof item"), get(i, "data", bytes, "proof item")))
        return cls(
            forum=get(m, "forum", str, "proof"),
            seq=non_negative(m, "seq", "proof"),
            hub=get(m, "hub", str, "proof"),
            key=fixed_bytes(m, "key", 32, "proof"),
            items=(items[0], items[1]),
        )

    def to_wire(self) -> dict[str, Value]:
        return {
            "v": VERSION, "forum": self.forum, "seq": self.seq, "hub": self.hub, "key": self.key,
            "items": [{"kind": k, "data": d} for k, d in self.items],
        }  # fmt: skip


def _item(kind: str, data: bytes) -> tuple[Signed, bytes]:
    if kind == "entry":
        entry = Entry.from_bytes(data)
        return entry, entry.hash
    head = Head.from_bytes(data)
    return head, head.hash


def verify_equivocation(proof: EquivocationProof, hub_key: VerifyKey | None = None) -> None:
    """Raise ``equivocation.invalid`` unless ``proof`` shows the hub signed two histories.

    ``hub_key``, when given, is the key the caller knows for the hub; it must be the key
    the proof carries. Any failure at all is ``equivocation.invalid``.
    """
    key = VerifyKey(proof.key)
    if hub_key is not None and hub_key.raw != proof.key:
        raise RemoteProtocolError("equivocation.invalid", "proof carries another hub key")
    hashes = []
    for kind, data in proof.items:
        try:
            obj, h = _item(kind, data)
            if (obj.forum, obj.seq, obj.hub) != (proof.forum, proof.seq, proof.hub):
                raise RemoteProtocolError("equivocation.invalid", "items differ in forum/seq/hub")
            if isinstance(obj, Entry):
                verify_entry(obj, key)
            else:
                verify_head(obj, key)
        except RemoteProtocolError as exc:
            if exc.code == "equivocation.invalid":
                raise
            raise RemoteProtocolError("equivocation.invalid", f"{kind}: {exc}") from exc
        hashes.append(h)
    if hashes[0] == hashes[1]:
        raise RemoteProtocolError("equivocation.invalid", "both items name the same hash")


def make_equivocation_proof(a: Signed, b: Signed, hub_key: VerifyKey) -> EquivocationProof:
    """Package two conflicting hub-signed items; ``equivocation.invalid`` if they agree."""
    items = tuple(("entry" if isinstance(x, Entry) else "head", _raw(x)) for x in (a, b))
    proof = EquivocationProof(a.forum, a.seq, a.hub, hub_key.raw, (items[0], items[1]))
    try:
        verify_equivocation(proof, hub_key)
    except RemoteProtocolError as exc:
        raise LocalProtocolError("equivocation.invalid", exc.message) from exc
    return proof


def _raw(x: Signed) -> bytes:
    return x.raw if isinstance(x, Entry) else encode(x.to_wire())
