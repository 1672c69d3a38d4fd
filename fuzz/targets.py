"""Decoder fuzz targets shared by the atheris harnesses (fuzz/) and Hypothesis (tests/fuzz/).

Each target takes untrusted bytes and runs them through one decoder the way a node does.
The contract under test: a decoder either returns or raises ``ProtocolError`` with a code
from ``protocol.errors.CODES``. Anything else (another exception, an unknown code, a
decoded value that does not re-encode to the same bytes) is a bug; ``check`` raises
``FuzzFailure`` for it so both fuzzers report the same thing.

The world (keys, a forum, its state) is built once from fixed seeds, so every target is
deterministic and a crash replays from its input alone.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from protocol.codec import decode, encode
from protocol.descriptor import (
    Device,
    KeySet,
    build_attestation,
    build_descriptor,
    build_rotation,
    verify_attestation,
    verify_descriptor,
    verify_rotation,
)
from protocol.envelope import PeerView, accept_batch, build_batch, build_envelope
from protocol.errors import CODES, ProtocolError
from protocol.group import SealedContent, SealedSecret
from protocol.hubmove import HubMoveCertificate
from protocol.identity import make_forum_id
from protocol.keys import AgreementKey, SigningKey, VerifyKey, b64u
from protocol.log import (
    Cosignature,
    Entry,
    EquivocationProof,
    Event,
    Head,
    append_entry,
    build_event,
    build_head,
    cosign_head,
    verify_equivocation,
)
from protocol.rules import ForumState, apply_entry

NOW = 1_750_000_000_000  # a fixed clock: every envelope seed is fresh at this instant
HUB, PEER, ME = "hub.example", "peer.example", "me.example"


class FuzzFailure(AssertionError):
    """A decoder did something other than return or raise a coded ProtocolError."""


@dataclass(frozen=True)
class World:
    hub_key: SigningKey
    peer_key: SigningKey
    device: SigningKey
    agree: AgreementKey
    forum: str
    create: Event
    first: Entry
    state: ForumState


def _seed(n: int) -> bytes:
    return bytes([n]) * 32


@cache
def world() -> World:
    hub_key, peer_key = SigningKey(_seed(1)), SigningKey(_seed(2))
    device, agree = SigningKey(_seed(3)), AgreementKey(_seed(4))
    forum = make_forum_id(_seed(5)[:16], HUB)
    att = build_attestation(node=HUB, member=f"@alice:{HUB}", org="Acme",
                            devices=[Device(device.verify_key, agree.public)], ts=NOW,
                            key=hub_key)  # fmt: skip
    create = build_event(forum=forum, type="forum.create", author=f"@alice:{HUB}",
                         device_key=device, ts=NOW, nonce=_seed(6)[:16], epoch=0,
                         body={"hub": HUB, "attestation": att.to_wire()})  # fmt: skip
    first = append_entry(bytes(32), 1, create.raw, hub_key, HUB, NOW)
    state = apply_entry(None, first, hub_key_at=_hub_key_at, node_keys=_hub_key_at)
    return World(hub_key, peer_key, device, agree, forum, create, first, state)


def _hub_key_at(node: str, kid: str, ts: int) -> VerifyKey | None:
    key = SigningKey(_seed(1)).verify_key
    return key if node == HUB and kid == key.key_id else None


def _peers() -> dict[str, PeerView]:
    return {PEER: PeerView("approved", KeySet((world().peer_key.verify_key,)))}


# ---------------------------------------------------------------------------- targets


def codec_target(data: bytes) -> None:
    value = decode(data)
    if encode(value) != data:  # a decoder that normalizes would let two encodings verify
        raise FuzzFailure("decoded value does not re-encode to the input")


def batch_target(data: bytes) -> None:
    accept_batch(data, me=ME, now_ms=NOW, peers=_peers(), seen=lambda _id: False)


def event_target(data: bytes) -> None:
    ev = Event.from_bytes(data)
    if ev.raw != data:
        raise FuzzFailure("event.raw differs from the bytes it was read from")


def entry_target(data: bytes) -> None:
    """Decode an entry and fold it onto the forum's state: schema, chain and rules."""
    entry = Entry.from_bytes(data)
    w = world()
    state = None if entry.seq == 1 else w.state
    apply_entry(state, entry, hub_key_at=_hub_key_at, node_keys=_hub_key_at)


def head_target(data: bytes) -> None:
    """A head, a cosignature or an equivocation proof, by what the map claims to be."""
    obj = decode(data)
    if isinstance(obj, dict) and "items" in obj:
        verify_equivocation(EquivocationProof.from_wire(obj), world().hub_key.verify_key)
    elif isinstance(obj, dict) and "node" in obj:
        Cosignature.from_wire(obj)
    else:
        Head.from_bytes(data)


def identity_target(data: bytes) -> None:
    """Descriptor, rotation statement or attestation (the first byte picks which)."""
    if not data:
        return
    which, rest = data[0] % 3, data[1:]
    keys = KeySet((world().hub_key.verify_key,))
    if which == 0:
        verify_descriptor(rest, expected_name=HUB, now_ms=NOW)
    elif which == 1:
        verify_rotation(rest, expected_node=HUB, pinned=keys)
    else:
        verify_attestation(rest, expected_node=HUB, keys=keys)


def sealed_target(data: bytes) -> None:
    """SealedSecret, SealedContent or a hub move certificate from one decoded map."""
    obj = decode(data)
    for read in (SealedSecret.from_wire, SealedContent.from_wire, HubMoveCertificate.from_wire):
        try:
            read(obj)
        except ProtocolError as exc:
            _coded(exc)


def client_json_target(data: bytes) -> None:
    """What the client API does with a JSON body before storage: the submit-event path."""
    from node.bodies import parse_json  # the node's own parsers, not copies
    from node.routes.client import b64_field

    Event.from_bytes(b64_field(parse_json(data), "event"))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "codec": codec_target,
    "batch": batch_target,
    "event": event_target,
    "entry": entry_target,
    "head": head_target,
    "identity": identity_target,
    "sealed": sealed_target,
    "client_json": client_json_target,
}


def _coded(exc: ProtocolError) -> None:
    if exc.code not in CODES:
        raise FuzzFailure(f"uncoded error {exc.code!r}") from exc


def check(target: str, data: bytes) -> str | None:
    """Run one input; return the refusal code (None if accepted); raise FuzzFailure on a bug."""
    try:
        TARGETS[target](data)
    except ProtocolError as exc:
        _coded(exc)
        return exc.code
    except FuzzFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - the point: anything uncoded is a finding
        raise FuzzFailure(f"{target}: {type(exc).__name__}: {exc}") from exc
    return None


# ---------------------------------------------------------------------------- seeds


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per target: mutations of these reach past the first checks."""
    w = world()
    env = build_envelope(id=bytes(16), sender=PEER, to=ME, ts=NOW, kind="node.ping", body={},
                         key=w.peer_key).encode()  # fmt: skip
    head = build_head(w.forum, 1, w.first.hash, w.hub_key, HUB, NOW)
    cosig = cosign_head(head, w.peer_key, PEER, NOW)
    other = build_head(w.forum, 1, bytes(32), w.hub_key, HUB, NOW)
    proof = EquivocationProof(w.forum, 1, HUB, w.hub_key.verify_key.raw,
                              (("head", encode(head.to_wire())),
                               ("head", encode(other.to_wire()))))  # fmt: skip
    desc = build_descriptor(name=HUB, key=w.hub_key, issued=NOW, valid_until=NOW + 86_400_000,
                            endpoints={"inbox": "https://hub.example/_pf/v1/inbox"})  # fmt: skip
    rot = build_rotation(node=HUB, old=w.hub_key, new=SigningKey(_seed(9)), ts=NOW)
    att = w.create.body["attestation"]
    sealed = SealedContent(suite=1, nonce=bytes(12), ct=bytes(20)).to_wire()
    return {
        "codec": [encode({"a": [1, -1, 300, b"x", "y", None, True]}), b"\x90"],
        "batch": [build_batch([env]), build_batch([env, env])],
        "event": [w.create.raw],
        "entry": [w.first.raw],
        "head": [encode(head.to_wire()), encode(cosig.to_wire()), encode(proof.to_wire())],
        "identity": [
            b"\x00" + encode(desc.to_wire()),
            b"\x01" + encode(rot.to_wire()),
            b"\x02" + encode(att),
        ],  # fmt: skip
        "sealed": [encode(sealed)],
        "client_json": [json.dumps({"event": b64u(w.create.raw)}).encode()],
    }


def b64_or_hex(text: str) -> bytes:
    """Corpus files hold one input per line as hex (readable diffs, no binary in git)."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"corpus line is neither hex nor base64: {text[:40]!r}") from exc
