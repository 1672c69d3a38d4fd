"""Envelopes and batches (specs/protocol.md §5): how one node's message reaches another.

An envelope is signed by the sending node and checked by the receiver in one fixed order
(``accept_envelope``, steps E1-E8): cheap refusals first, the signature only for an
approved peer's fresh, unseen envelope addressed to us, and last the rule that every
identity inside the body agrees with the node that sent it. The order is part of the
protocol: two implementations refuse the same bytes with the same code.

The replay cache lives in the node; ``seen`` only reads it, and the node records an id
once the envelope was accepted (receiving is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .codec import DEFAULT_LIMITS, Limits, encode
from .descriptor import KeySet, Rotation
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .identity import check_node_name, node_of
from .keys import SigningKey, sign_object, signing_input
from .schema import VERSION as VERSION
from .schema import (
    bin_of,
    built_locally,
    check_fields,
    check_version,
    field,
    kid,
    load_map,
    sig,
    text,
    typed,
    uint,
)

ID_BYTES: Final = 16
MAX_KIND: Final = 64
_FIELDS: Final = ("v", "id", "from", "to", "ts", "kind", "body", "kid", "sig")

# Peer status (set by the node's operator) -> the code an envelope from it is refused with.
PEER_STATUS: Final[Mapping[str, str | None]] = {
    "approved": None,
    "pending": "envelope.peer_not_approved",
    "blocked": "envelope.blocked_peer",
    "key_changed": "envelope.key_changed",
}


@dataclass(frozen=True)
class PeerView:
    """What the receiver knows of a sending node: its approval status and pinned keys."""

    status: str
    keys: KeySet

    def __post_init__(self) -> None:
        if self.status not in PEER_STATUS:
            raise LocalProtocolError("schema.bad_value", f"peer status {self.status!r}")


@dataclass(frozen=True)
class Envelope:
    """One signed node-to-node message. ``sender`` is the wire field ``from``."""

    id: bytes
    sender: str
    to: str
    ts: int
    kind: str
    body: dict[str, Any]
    kid: str
    sig: bytes

    def __post_init__(self) -> None:
        bin_of(self.id, ID_BYTES, "envelope.id")
        check_node_name(self.sender)
        check_node_name(self.to)
        uint(self.ts, "envelope.ts")
        text(self.kind, "envelope.kind", MAX_KIND)
        typed(self.body, dict, "envelope.body")
        kid(self.kid, "envelope.kid")
        sig(self.sig, "envelope.sig")

    @classmethod
    def from_wire(cls, obj: Any) -> Envelope:
        check_fields(obj, _FIELDS, what="envelope")
        check_version(obj, "envelope")
        return cls(
            obj["id"], obj["from"], obj["to"], obj["ts"], obj["kind"], obj["body"], obj["kid"],
            obj["sig"],
        )  # fmt: skip

    def unsigned(self) -> dict[str, Any]:
        return {
            "v": VERSION, "id": self.id, "from": self.sender, "to": self.to, "ts": self.ts,
            "kind": self.kind, "body": self.body, "kid": self.kid,
        }  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": self.sig}

    def encode(self) -> bytes:
        return encode(self.to_wire())


# ---------------------------------------------------------------------------- origin rules
#
# Step E8: per kind, which identities inside the body must name the sending node. A kind
# not in this table is refused; ``None`` means the body carries no identity to check here
# (heads and proofs are hub-signed and may be relayed by any member node).


def _origin_mismatch(what: str, found: str, sender: str) -> RemoteProtocolError:
    return RemoteProtocolError("envelope.origin_mismatch", f"{what} {found!r} sent by {sender!r}")


def _signed_items(body: dict[str, Any], name: str, limits: Limits) -> list[dict[str, Any]]:
    """Decode each encoded signed object (bin) of ``body[name]`` as a map."""
    items = field(body, name, list, "body")
    if not items:
        raise RemoteProtocolError("schema.bad_value", f"body.{name} is empty")
    return [load_map(typed(item, bytes, f"body.{name}[]"), limits) for item in items]


def _forum_body(body: dict[str, Any], items: str) -> None:
    check_fields(body, ("forum", items), what="body")
    text(body["forum"], "body.forum", 255)


def _attached_body(body: dict[str, Any], items: str, limits: Limits) -> None:
    """A body of events or entries that may carry their attachments (§6.9): absent when
    none, never empty, each item bin of at most the event size limit."""
    check_fields(body, ("forum", items), ("attachments",), what="body")
    text(body["forum"], "body.forum", 255)
    if "attachments" not in body:
        return
    attachments = field(body, "attachments", list, "body")
    if not attachments:
        raise RemoteProtocolError("schema.bad_value", "body.attachments is empty")
    for item in attachments:
        if len(typed(item, bytes, "body.attachments[]")) > limits.max_event_bytes:
            raise RemoteProtocolError("event.too_large", "an attachment exceeds 64 KiB")


def _submit_origin(body: dict[str, Any], sender: str, limits: Limits) -> None:
    _attached_body(body, "events", limits)
    for event in _signed_items(body, "events", limits):
        author = node_of(field(event, "author", str, "event"))
        if author != sender:
            raise _origin_mismatch("event author's node", author, sender)


def _entries_origin(body: dict[str, Any], sender: str, limits: Limits) -> None:
    _attached_body(body, "entries", limits)
    for entry in _signed_items(body, "entries", limits):
        if (hub := field(entry, "hub", str, "entry")) != sender:
            raise _origin_mismatch("entry hub", hub, sender)


def _invite_origin(body: dict[str, Any], sender: str, limits: Limits) -> None:
    _forum_body(body, "entry")
    entry = load_map(typed(body["entry"], bytes, "body.entry"), limits)
    if (hub := field(entry, "hub", str, "entry")) != sender:
        raise _origin_mismatch("entry hub", hub, sender)


def _rotation_origin(body: dict[str, Any], sender: str, limits: Limits) -> None:
    check_fields(body, ("rotation",), what="body")
    rotation = Rotation.from_wire(load_map(typed(body["rotation"], bytes, "rotation"), limits))
    if rotation.node != sender:
        raise _origin_mismatch("rotation node", rotation.node, sender)


ORIGIN_RULES: Final[Mapping[str, Callable[[dict[str, Any], str, Limits], None] | None]] = {
    "forum.submit": _submit_origin,
    "forum.entries": _entries_origin,
    "forum.invite": _invite_origin,
    "forum.head": None,
    "forum.proof": None,
    "forum.backfill": None,  # a request; answered only to participants (api.md)
    "forum.result": None,  # hub -> submitter; the engine checks sender == the forum's hub
    "member.lookup": None,  # a request for a member's attestation; answered to approved peers
    "node.rotation": _rotation_origin,
    "node.ping": None,
}
KINDS: Final = frozenset(ORIGIN_RULES)


def check_origin(env: Envelope, limits: Limits = DEFAULT_LIMITS) -> None:
    """Step E8: identities in the body agree with ``env.sender`` (or envelope.unknown_kind)."""
    if env.kind not in ORIGIN_RULES:
        raise RemoteProtocolError("envelope.unknown_kind", f"kind {env.kind!r:.70}")
    rule = ORIGIN_RULES[env.kind]
    if rule is not None:
        rule(env.body, env.sender, limits)


# ---------------------------------------------------------------------------- acceptance


def accept_envelope(
    data: bytes,
    *,
    me: str,
    now_ms: int,
    peers: Mapping[str, PeerView],
    seen: Callable[[bytes], bool],
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Steps E1-E8 of §5.3, in order; the first failing step's code is raised."""
    data = bytes(data)
    if len(data) > limits.max_batch_bytes:  # E1
        raise RemoteProtocolError("envelope.too_large", f"{len(data)} bytes")
    env = Envelope.from_wire(load_map(data, limits))  # E2
    peer = peers.get(env.sender)  # E3
    if peer is None:
        raise RemoteProtocolError("envelope.unknown_peer", f"{env.sender!r}")
    refusal = PEER_STATUS[peer.status]
    if refusal is not None:
        raise RemoteProtocolError(refusal, f"{env.sender!r} is {peer.status}")
    if env.to != me:  # E4
        raise RemoteProtocolError("envelope.wrong_recipient", f"addressed to {env.to!r}")
    if abs(env.ts - now_ms) > limits.skew_seconds * 1000:  # E5
        raise RemoteProtocolError("envelope.skew", f"ts {env.ts} vs now {now_ms}")
    if seen(env.id):  # E6
        raise RemoteProtocolError("envelope.replay", env.id.hex())
    key = peer.keys.key_valid_at(env.kid, env.ts)  # E7
    key.verify(signing_input("envelope", env.unsigned()), env.sig)
    check_origin(env, limits)  # E8
    return env


def accept_batch(
    data: bytes,
    *,
    me: str,
    now_ms: int,
    peers: Mapping[str, PeerView],
    seen: Callable[[bytes], bool],
    limits: Limits = DEFAULT_LIMITS,
) -> list[Envelope | ProtocolError]:
    """Steps B1-B3 of §5.4, then ``accept_envelope`` on each envelope independently.

    A fault in the batch itself raises; a fault in one envelope is that envelope's result,
    so one bad envelope does not sink the others. An id accepted earlier in the same batch
    counts as seen.
    """
    data = bytes(data)
    if len(data) > limits.max_batch_bytes:  # B1
        raise RemoteProtocolError("envelope.too_large", f"batch of {len(data)} bytes")
    batch = check_fields(load_map(data, limits), ("v", "envelopes"), what="batch")  # B2
    check_version(batch, "batch")
    items = field(batch, "envelopes", list, "batch")
    if len(items) > limits.max_batch_envelopes:  # B3
        raise RemoteProtocolError("envelope.too_many", f"{len(items)} envelopes")
    accepted: set[bytes] = set()
    results: list[Envelope | ProtocolError] = []
    for item in items:
        try:
            env = accept_envelope(
                typed(item, bytes, "batch.envelopes[]"),
                me=me,
                now_ms=now_ms,
                peers=peers,
                seen=lambda i: i in accepted or seen(i),
                limits=limits,
            )
        except ProtocolError as exc:
            results.append(exc)
        else:
            accepted.add(env.id)
            results.append(env)
    return results


# ---------------------------------------------------------------------------- sending


def build_envelope(
    *,
    id: bytes,
    sender: str,
    to: str,
    ts: int,
    kind: str,
    body: Mapping[str, Any],
    key: SigningKey,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Sign an envelope; refuse (LocalProtocolError) one the receiver would refuse at E8."""
    with built_locally():
        draft = Envelope(id, sender, to, ts, kind, dict(body), key.key_id, bytes(64))
        check_origin(draft, limits)
        return Envelope.from_wire(sign_object("envelope", draft.unsigned(), key))


def _encoded(envelopes: Iterable[Envelope | bytes]) -> list[bytes]:
    return [e.encode() if isinstance(e, Envelope) else bytes(e) for e in envelopes]


def build_batch(envelopes: Sequence[Envelope | bytes], *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode one batch; refuse one the receiver would refuse at B1 or B3."""
    items = _encoded(envelopes)
    if len(items) > limits.max_batch_envelopes:
        raise LocalProtocolError("envelope.too_many", f"{len(items)} envelopes")
    data = encode({"v": VERSION, "envelopes": items})
    if len(data) > limits.max_batch_bytes:
        raise LocalProtocolError("envelope.too_large", f"batch of {len(data)} bytes")
    return data


# Overhead of {v:1, envelopes:[...]} around the items: fixmap, two keys, 1, array32 header.
_BATCH_OVERHEAD: Final = 1 + 2 + 1 + 10 + 5
_BIN_HEADER: Final = 5  # bin32, the widest


def pack_batches(
    envelopes: Sequence[Envelope | bytes], *, limits: Limits = DEFAULT_LIMITS
) -> list[bytes]:
    """Split envelopes, in order, into as few batches as the limits allow (an outbox flush)."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = _BATCH_OVERHEAD
    for item in _encoded(envelopes):
        cost = len(item) + _BIN_HEADER
        if _BATCH_OVERHEAD + cost > limits.max_batch_bytes:
            raise LocalProtocolError("envelope.too_large", f"envelope of {len(item)} bytes")
        if current and (
            len(current) == limits.max_batch_envelopes or size + cost > limits.max_batch_bytes
        ):
            batches.append(build_batch(current, limits=limits))
            current, size = [], _BATCH_OVERHEAD
        current.append(item)
        size += cost
    if current:
        batches.append(build_batch(current, limits=limits))
    return batches
