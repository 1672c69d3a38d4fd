"""Write specs/vectors/descriptor.json and specs/vectors/envelope.json (specs/protocol.md §4, §5).

Deterministic: every key comes from a 32-byte seed SHA-256("PFP/1 test vector " + label)
(the convention of tests/vectors.py, derived inline so this script runs on its own), every
time is fixed, and Ed25519 signatures are deterministic. Valid cases are made by the
builders in protocol/descriptor.py and protocol/envelope.py and cross-checked against a
second, hand-rolled signing path here; invalid cases are signed by hand so each breaks
exactly the rule its "desc" names. Run: python specs/vectors/generate_envelopes.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from protocol.codec import decode, encode  # noqa: E402
from protocol.descriptor import (  # noqa: E402
    Device,
    KeySet,
    OldKey,
    apply_rotation,
    build_attestation,
    build_descriptor,
    build_rotation,
)
from protocol.envelope import build_batch, build_envelope  # noqa: E402
from protocol.keys import AgreementKey, SigningKey, b64u, sign_object, signing_input  # noqa: E402

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NOW = T0 + 3_600_000  # the receiver's clock in every envelope case
ROTATED = NOW - 60_000  # a.example retires key 1 for key 2
WEEK = 7 * 24 * 3600 * 1000
ME = "b.example"


def seed(label: str) -> bytes:
    return hashlib.sha256(("PFP/1 test vector " + label).encode()).digest()


LABELS = {
    "A1": "node a.example key 1",
    "A2": "node a.example key 2",
    "B": "node b.example key 1",
    "C": "node c.example key 1",
    "C2": "node c.example key 2",
    "D": "node d.example key 1",
    "E": "node e.example key 1",
    "Z": "node z.example key 1",
    "DEV": "127.0.0.1:8701 key 1",
    "X": "stranger key",
    "ANN": "member @ann:a.example device 1 sign",
    "BOB": "member @bob:c.example device 1 sign",
}
K = {name: SigningKey(seed(label)) for name, label in LABELS.items()}
ANN_AGREE = AgreementKey(seed("member @ann:a.example device 1 agree"))
FORUM = "!" + b64u(seed("forum 1")[:16]) + ":a.example"


def key_table(names: list[str]) -> list[dict[str, str]]:
    return [
        {
            "label": LABELS[n],
            "seed": seed(LABELS[n]).hex(),
            "public": K[n].verify_key.raw.hex(),
            "kid": K[n].key_id,
        }
        for n in names
    ]


def keyset_json(keys: KeySet) -> dict[str, Any]:
    return {
        "keys": [{"kid": k.key_id, "key": k.raw.hex()} for k in keys.current],
        "old_keys": [
            {"kid": o.key.key_id, "key": o.key.raw.hex(), "expired": o.expired} for o in keys.old
        ],
    }


def signed(domain: str, unsigned: dict[str, Any], key: SigningKey) -> bytes:
    return encode(sign_object(domain, unsigned, key))


def flip_sig(data: bytes) -> bytes:
    """The same object with the last bit of its ``sig`` flipped."""
    obj = decode(data)
    obj["sig"] = obj["sig"][:-1] + bytes([obj["sig"][-1] ^ 0x01])
    return encode(obj)


# ---------------------------------------------------------------------------- node identity

A_PINNED = KeySet((K["A1"].verify_key,))  # what b.example approved before the rotation
A_KEYS = KeySet((K["A2"].verify_key,), (OldKey(K["A1"].verify_key, ROTATED),))
INBOX = {"inbox": "https://a.example/pfp/inbox"}


def descriptor_map(name: str, key: SigningKey, keys: KeySet, issued: int, until: int) -> dict:
    return {
        "v": 1,
        "name": name,
        **keys.to_wire(),
        "issued": issued,
        "valid_until": until,
        "endpoints": {"inbox": f"https://{name}/pfp/inbox"},
        "versions": ["PFP/1"],
        "kid": key.key_id,
    }


def descriptor_cases() -> dict[str, Any]:
    a = build_descriptor(
        name="a.example",
        key=K["A2"],
        keys=A_KEYS,
        issued=T0,
        valid_until=T0 + WEEK,
        endpoints={**INBOX, "backfill": "https://a.example/pfp/backfill"},
    )
    a_bytes = encode(a.to_wire())
    by_hand = dict(a.to_wire())
    del by_hand["sig"]
    assert signed("descriptor", by_hand, K["A2"]) == a_bytes
    dev = build_descriptor(
        name="127.0.0.1:8701",
        key=K["DEV"],
        issued=T0,
        valid_until=T0 + 3_600_000,
        endpoints={"inbox": "http://127.0.0.1:8701/pfp/inbox"},
    )
    one_key = KeySet((K["A2"].verify_key,))

    def bad(desc: str, data: bytes, error: str, **over: Any) -> dict[str, Any]:
        case = {"desc": desc, "data": data.hex(), "expected_name": "a.example", "now_ms": NOW}
        return {**case, **over, "error": error}

    v2 = descriptor_map("a.example", K["A2"], one_key, T0, T0 + WEEK) | {"v": 2}
    return {
        "valid": [
            {
                "desc": "a.example after rotating key 1 to key 2 (key 1 listed as old)",
                "data": a_bytes.hex(),
                "expected_name": "a.example",
                "now_ms": NOW,
                "kid": K["A2"].key_id,
            },
            {
                "desc": "development node named by address and port, http endpoint, one hour",
                "data": encode(dev.to_wire()).hex(),
                "expected_name": "127.0.0.1:8701",
                "now_ms": T0 + 1,
                "kid": K["DEV"].key_id,
            },
        ],
        "invalid": [
            bad(
                "signature does not verify (last bit of sig flipped)",
                flip_sig(a_bytes),
                "sig.invalid",
            ),
            bad(
                "fetched from another host than the name it states",
                a_bytes,
                "descriptor.name_mismatch",
                expected_name="evil.example",
            ),
            bad(
                "expired: now is 1 ms past valid_until",
                a_bytes,
                "descriptor.expired",
                now_ms=T0 + WEEK + 1,
            ),
            bad(
                "validity of 7 days + 1 ms",
                signed(
                    "descriptor",
                    descriptor_map("a.example", K["A2"], one_key, T0, T0 + WEEK + 1),
                    K["A2"],
                ),
                "descriptor.validity_too_long",
            ),
            bad(
                "issued 10 minutes ahead of the verifier's clock",
                signed(
                    "descriptor",
                    descriptor_map("a.example", K["A2"], one_key, NOW + 600_000, NOW + WEEK),
                    K["A2"],
                ),
                "descriptor.not_yet_valid",
            ),
            bad(
                "signed by the retired key 1 it lists as old",
                signed(
                    "descriptor",
                    descriptor_map("a.example", K["A1"], A_KEYS, T0, T0 + WEEK),
                    K["A1"],
                ),
                "sig.key_expired",
            ),
            bad(
                "signed by a key it does not list",
                signed(
                    "descriptor",
                    descriptor_map("a.example", K["X"], one_key, T0, T0 + WEEK),
                    K["X"],
                ),
                "sig.unknown_key",
            ),
            bad("version 2", signed("descriptor", v2, K["A2"]), "schema.unsupported_version"),
        ],
    }


def rotation_map(node: str, old: SigningKey, new: SigningKey, ts: int) -> dict[str, Any]:
    return {
        "v": 1,
        "node": node,
        "old_kid": old.key_id,
        "old_key": old.verify_key.raw,
        "new_kid": new.key_id,
        "new_key": new.verify_key.raw,
        "ts": ts,
        "kid": old.key_id,
    }


def rotation_bytes(unsigned: dict[str, Any], by: SigningKey, new_by: SigningKey) -> bytes:
    message = signing_input("rotation", unsigned)
    return encode({**unsigned, "sig": by.sign(message), "new_sig": new_by.sign(message)})


def rotation_cases() -> dict[str, Any]:
    rot = build_rotation(node="a.example", old=K["A1"], new=K["A2"], ts=ROTATED)
    good = encode(rot.to_wire())
    unsigned = rotation_map("a.example", K["A1"], K["A2"], ROTATED)
    assert rotation_bytes(unsigned, K["A1"], K["A2"]) == good
    assert apply_rotation(A_PINNED, rot) == A_KEYS
    pinned = keyset_json(A_PINNED)

    def bad(desc: str, data: bytes, **over: Any) -> dict[str, Any]:
        case = {"desc": desc, "data": data.hex(), "expected_node": "a.example", "pinned": pinned}
        return {**case, **over, "error": "rotation.invalid"}

    return {
        "valid": [
            {
                "desc": "a.example retires key 1 for key 2; applying it gives 'after'",
                "data": good.hex(),
                "expected_node": "a.example",
                "pinned": pinned,
                "after": keyset_json(A_KEYS),
            },
        ],
        "invalid": [
            bad(
                "not signed by the old key: sig made by the new key",
                rotation_bytes(unsigned, K["A2"], K["A2"]),
            ),
            bad(
                "not signed by the old key: kid names the new key",
                rotation_bytes({**unsigned, "kid": K["A2"].key_id}, K["A2"], K["A2"]),
            ),
            bad(
                "new_sig does not prove possession of the new key (made by a stranger)",
                rotation_bytes(unsigned, K["A1"], K["X"]),
            ),
            bad(
                "old key is not a key the verifier pinned for the node",
                rotation_bytes(
                    rotation_map("a.example", K["X"], K["A2"], ROTATED), K["X"], K["A2"]
                ),
            ),
            bad(
                "statement is for another node than the one expected",
                good,
                expected_node="c.example",
            ),
        ],
    }


def attestation_map(member: str, ts: int, key: SigningKey, **extra: str) -> dict[str, Any]:
    device = {"sign": K["ANN"].verify_key.raw, "agree": ANN_AGREE.public.raw}
    return {
        "v": 1,
        "node": "a.example",
        "member": member,
        "org": "Acme Corp",
        "devices": [device],
        "ts": ts,
        "kid": key.key_id,
        **extra,
    }


def attestation_cases() -> dict[str, Any]:
    device = Device(K["ANN"].verify_key, ANN_AGREE.public)
    full = build_attestation(
        node="a.example",
        member="@ann:a.example",
        org="Acme Corp",
        devices=[device],
        ts=T0,
        key=K["A1"],
        title="Chief Operating Officer",
        industry="Manufacturing",
    )
    full_bytes = encode(full.to_wire())
    extra = {"title": "Chief Operating Officer", "industry": "Manufacturing"}
    assert (
        signed("attestation", attestation_map("@ann:a.example", T0, K["A1"], **extra), K["A1"])
        == full_bytes
    )
    bare = signed("attestation", attestation_map("@ann:a.example", NOW, K["A2"]), K["A2"])
    keys = keyset_json(A_KEYS)

    def case(desc: str, data: bytes, **more: Any) -> dict[str, Any]:
        return {
            "desc": desc,
            "data": data.hex(),
            "expected_node": "a.example",
            "keys": keys,
            **more,
        }

    return {
        "valid": [
            case(
                "with title and industry, signed by key 1 before it was retired",
                full_bytes,
                device_id=K["ANN"].key_id,
                agree_id=ANN_AGREE.public.key_id,
            ),
            case(
                "without optional fields, signed by current key 2",
                bare,
                device_id=K["ANN"].key_id,
                agree_id=ANN_AGREE.public.key_id,
            ),
        ],
        "invalid": [
            case("signature does not verify", flip_sig(bare), error="attestation.invalid"),
            case(
                "member belongs to another node",
                signed("attestation", attestation_map("@ann:c.example", NOW, K["A2"]), K["A2"]),
                error="attestation.invalid",
            ),
            case(
                "signed by key 1 at a time after key 1 expired",
                signed("attestation", attestation_map("@ann:a.example", ROTATED, K["A1"]), K["A1"]),
                error="sig.key_expired",
            ),
            case(
                "title present but nil",
                signed(
                    "attestation",
                    attestation_map("@ann:a.example", NOW, K["A2"]) | {"title": None},
                    K["A2"],
                ),
                error="schema.wrong_type",
            ),
        ],
    }


# ---------------------------------------------------------------------------- envelopes

PEERS = {
    "a.example": ("approved", A_KEYS),
    "c.example": ("blocked", KeySet((K["C"].verify_key,))),
    "d.example": ("pending", KeySet((K["D"].verify_key,))),
    "e.example": ("key_changed", KeySet((K["E"].verify_key,))),
}
SENDER_KEY = {"a.example": K["A2"], "c.example": K["C"], "d.example": K["D"], "e.example": K["E"]}
SENDER_KEY["z.example"] = K["Z"]
REPLAYED = seed("envelope id replayed")[:16]


def env_id(label: str) -> bytes:
    return seed("envelope id " + label)[:16]


def event(author: str, key: SigningKey, ts: int) -> bytes:
    unsigned = {
        "v": 1,
        "forum": FORUM,
        "type": "member.leave",
        "author": author,
        "kid": key.key_id,
        "ts": ts,
        "nonce": seed("nonce " + author)[:16],
        "epoch": 1,
        "body": {},
    }
    return signed("event", unsigned, key)


def entry(hub: str, key: SigningKey, seq: int = 1) -> bytes:
    unsigned = {
        "v": 1,
        "forum": FORUM,
        "seq": seq,
        "prev": bytes(32),
        "event": event("@ann:a.example", K["ANN"], NOW - 5000),
        "ts": NOW - 4000,
        "hub": hub,
        "kid": key.key_id,
    }
    return signed("entry", unsigned, key)


def raw_envelope(
    label: str,
    kind: str,
    body: dict[str, Any],
    *,
    sender: str = "a.example",
    to: str = ME,
    ts: int = NOW - 1000,
    key: SigningKey | None = None,
    id: bytes | None = None,
) -> bytes:
    """Sign by hand, bypassing build_envelope's checks, so invalid cases can be made."""
    key = key or SENDER_KEY[sender]
    unsigned = {
        "v": 1,
        "id": id or env_id(label),
        "from": sender,
        "to": to,
        "ts": ts,
        "kind": kind,
        "body": body,
        "kid": key.key_id,
    }
    return signed("envelope", unsigned, key)


def valid_envelope(label: str, kind: str, body: dict[str, Any], **over: Any) -> bytes:
    """Through build_envelope, and checked against the hand-signed bytes."""
    data = raw_envelope(label, kind, body, **over)
    key = over.get("key") or SENDER_KEY[over.get("sender", "a.example")]
    env = build_envelope(
        id=env_id(label),
        sender=over.get("sender", "a.example"),
        to=ME,
        ts=over.get("ts", NOW - 1000),
        kind=kind,
        body=body,
        key=key,
    )
    assert env.encode() == data, label
    return data


SUBMIT = {"forum": FORUM, "events": [event("@ann:a.example", K["ANN"], NOW - 2000)]}
ENTRIES = {"forum": FORUM, "entries": [entry("a.example", K["A2"]), entry("a.example", K["A2"], 2)]}
ROTATION_BODY = {
    "rotation": encode(
        build_rotation(node="a.example", old=K["A1"], new=K["A2"], ts=ROTATED).to_wire()
    )
}


def envelope_cases() -> dict[str, Any]:
    ping = valid_envelope("ping", "node.ping", {})
    valid = [
        ("node.ping with an empty body", ping),
        (
            "forum.submit: the event's author is a member of the sender",
            valid_envelope("submit", "forum.submit", SUBMIT),
        ),
        (
            "forum.entries: the sender is the hub of every entry",
            valid_envelope("entries", "forum.entries", ENTRIES),
        ),
        (
            "forum.invite: the sender is the hub of the invitation entry",
            valid_envelope(
                "invite", "forum.invite", {"forum": FORUM, "entry": entry("a.example", K["A2"])}
            ),
        ),
        (
            "node.rotation signed by the old key 1 just before it expired",
            valid_envelope("rotation", "node.rotation", ROTATION_BODY, key=K["A1"], ts=ROTATED - 1),
        ),
        (
            "ts exactly 5 minutes behind the receiver's clock",
            valid_envelope("skew edge", "node.ping", {}, ts=NOW - 300_000),
        ),
    ]
    foreign = {"forum": FORUM, "events": [event("@bob:c.example", K["BOB"], NOW - 2000)]}
    c_rotation = encode(
        build_rotation(node="c.example", old=K["C"], new=K["C2"], ts=NOW - 5000).to_wire()
    )
    mixed_entries = {
        "forum": FORUM,
        "entries": [entry("a.example", K["A2"]), entry("c.example", K["C"], 2)],
    }
    invalid = [
        ("signature does not verify (last bit of sig flipped)", flip_sig(ping), "sig.invalid"),
        (
            "addressed to another node",
            raw_envelope("to", "node.ping", {}, to="c.example"),
            "envelope.wrong_recipient",
        ),
        (
            "sender is not a known peer",
            raw_envelope("z", "node.ping", {}, sender="z.example"),
            "envelope.unknown_peer",
        ),
        (
            "sender is blocked",
            raw_envelope("c", "node.ping", {}, sender="c.example"),
            "envelope.blocked_peer",
        ),
        (
            "sender is known but pending approval",
            raw_envelope("d", "node.ping", {}, sender="d.example"),
            "envelope.peer_not_approved",
        ),
        (
            "sender's key changed without a rotation statement",
            raw_envelope("e", "node.ping", {}, sender="e.example"),
            "envelope.key_changed",
        ),
        (
            "ts 5 minutes + 1 ms ahead of the receiver's clock",
            raw_envelope("ahead", "node.ping", {}, ts=NOW + 300_001),
            "envelope.skew",
        ),
        (
            "ts 10 minutes behind the receiver's clock",
            raw_envelope("behind", "node.ping", {}, ts=NOW - 600_000),
            "envelope.skew",
        ),
        (
            "id already seen",
            raw_envelope("replay", "node.ping", {}, id=REPLAYED),
            "envelope.replay",
        ),
        (
            "signed by key 1 at its expiry time (valid only strictly before)",
            raw_envelope("expired", "node.ping", {}, key=K["A1"], ts=ROTATED),
            "sig.key_expired",
        ),
        (
            "signed by a key the sender never had",
            raw_envelope("stranger", "node.ping", {}, key=K["X"]),
            "sig.unknown_key",
        ),
        (
            "forum.submit relays an event whose author's node is not the sender",
            raw_envelope("foreign author", "forum.submit", foreign),
            "envelope.origin_mismatch",
        ),
        (
            "forum.entries with one entry whose hub is not the sender",
            raw_envelope("foreign hub", "forum.entries", mixed_entries),
            "envelope.origin_mismatch",
        ),
        (
            "forum.invite whose entry's hub is not the sender",
            raw_envelope(
                "foreign invite",
                "forum.invite",
                {"forum": FORUM, "entry": entry("c.example", K["C"])},
            ),
            "envelope.origin_mismatch",
        ),
        (
            "node.rotation carrying another node's statement",
            raw_envelope("foreign rotation", "node.rotation", {"rotation": c_rotation}),
            "envelope.origin_mismatch",
        ),
        ("kind not understood", raw_envelope("kind", "forum.gossip", {}), "envelope.unknown_kind"),
        ("trailing byte after the envelope", ping + b"\xc0", "codec.trailing_bytes"),
        (
            "no kid field",
            signed(
                "envelope",
                {
                    "v": 1,
                    "id": env_id("nokid"),
                    "from": "a.example",
                    "to": ME,
                    "ts": NOW,
                    "kind": "node.ping",
                    "body": {},
                },
                K["A2"],
            ),
            "schema.missing_field",
        ),
        (
            "order: blocked sender and wrong recipient is refused as blocked (E3 before E4)",
            raw_envelope("order 1", "node.ping", {}, sender="c.example", to="c.example"),
            "envelope.blocked_peer",
        ),
        (
            "order: replayed id with a bad signature is refused as replay (E6 before E7)",
            flip_sig(raw_envelope("order 2", "node.ping", {}, id=REPLAYED)),
            "envelope.replay",
        ),
        (
            "order: wrong recipient outside the skew window is refused as wrong recipient",
            raw_envelope("order 3", "node.ping", {}, to="d.example", ts=NOW + 900_000),
            "envelope.wrong_recipient",
        ),
    ]
    return {
        "valid": [
            {"desc": desc, "data": data.hex(), "id": decode(data)["id"].hex()}
            for desc, data in valid
        ],
        "invalid": [{"desc": d, "data": data.hex(), "error": e} for d, data, e in invalid],
    }


def batch_cases() -> dict[str, Any]:
    a, b, c = (valid_envelope(f"batch {i}", "node.ping", {}) for i in range(3))
    bad = flip_sig(raw_envelope("batch bad", "node.ping", {}))
    fifty_one = [valid_envelope(f"many {i}", "node.ping", {}) for i in range(51)]

    def batch(items: list[Any], v: int = 1) -> bytes:
        return encode({"v": v, "envelopes": items})

    assert build_batch([a, b, c]) == batch([a, b, c])
    big = batch([valid_envelope(f"big {i}", "node.ping", {}) for i in range(12)])
    return {
        "valid": [
            {
                "desc": "three envelopes",
                "data": batch([a, b, c]).hex(),
                "results": ["ok", "ok", "ok"],
            },
            {
                "desc": "a bad envelope in the middle does not sink the others",
                "data": batch([a, bad, c]).hex(),
                "results": ["ok", "sig.invalid", "ok"],
            },
            {
                "desc": "the same envelope twice: the second is a replay",
                "data": batch([a, a]).hex(),
                "results": ["ok", "envelope.replay"],
            },
            {
                "desc": "an item that is not bin",
                "data": batch([a, "x"]).hex(),
                "results": ["ok", "schema.wrong_type"],
            },
            {"desc": "empty batch", "data": batch([]).hex(), "results": []},
            {
                "desc": "50 envelopes (the limit)",
                "data": batch(fifty_one[:50]).hex(),
                "results": ["ok"] * 50,
            },
        ],
        "invalid": [
            {"desc": "51 envelopes", "data": batch(fifty_one).hex(), "error": "envelope.too_many"},
            {
                "desc": "51 items that are not envelopes: counted before any is decoded",
                "data": batch([0] * 51).hex(),
                "error": "envelope.too_many",
            },
            {
                "desc": f"{len(big)}-byte batch at a node that lowered max_batch_bytes to 2048",
                "data": big.hex(),
                "limits": {"max_batch_bytes": 2048},
                "error": "envelope.too_large",
            },
            {
                "desc": "version 2",
                "data": batch([a], v=2).hex(),
                "error": "schema.unsupported_version",
            },
            {
                "desc": "batch truncated by one byte",
                "data": batch([a])[:-1].hex(),
                "error": "codec.truncated",
            },
        ],
        "too_large": {"max_batch_bytes": 1024 * 1024, "error": "envelope.too_large"},
    }


SOURCE_IDENTITY = (
    "Generated by specs/vectors/generate_envelopes.py. Keys: Ed25519 seeds SHA-256('PFP/1 test "
    "vector ' + label) (table 'keys'); member X25519 key from label 'member @ann:a.example "
    f"device 1 agree'. Times in ms: T0={T0} (2026-01-01Z), now={NOW}, a.example retired key 1 "
    f"for key 2 at {ROTATED}. Descriptors: valid cases from protocol.descriptor.build_descriptor"
    " (cross-checked against hand signing); invalid ones hand-signed, each breaking one rule; "
    "verify_descriptor(data, expected_name, now_ms) must return it or fail with 'error'. "
    "Rotations: verify_rotation(data, expected_node, pinned); apply_rotation gives 'after'. "
    "Attestations: verify_attestation(data, expected_node, keys). Bytes are hex."
)
SOURCE_ENVELOPE = (
    "Generated by specs/vectors/generate_envelopes.py; keys and times as in descriptor.json "
    f"(same seeds). Receiver 'me'={ME} at now_ms={NOW} with the peer table 'peers' and the "
    "replay cache 'seen'. Valid envelopes come from protocol.envelope.build_envelope "
    "(cross-checked against hand signing); invalid ones are hand-signed so each breaks one rule "
    "(the 'order:' cases break two and pin the check order of §5.3). Events and entries inside "
    "bodies are signed with the event/entry domains (member key 'member @ann:a.example device 1 "
    "sign'; hub keys as listed). accept_envelope must return the envelope or fail with 'error'; "
    "accept_batch gives per-envelope 'results' ('ok' or an error code) or fails with 'error' "
    "('limits' lowers a limit for one case). 'too_large' is parametric: any batch longer than "
    "max_batch_bytes is refused before parsing. Bytes are hex."
)


def flatten(groups: dict[str, Any]) -> dict[str, Any]:
    """{"descriptor": {"valid": [...]}} -> {"descriptor_valid": [...]} for tests.vectors.cases."""
    return {f"{name}_{part}": cases for name, g in groups.items() for part, cases in g.items()}


def main() -> None:
    identity = {
        "source": SOURCE_IDENTITY,
        "keys": key_table(["A1", "A2", "C", "C2", "DEV", "X", "ANN"]),
        **flatten(
            {
                "descriptor": descriptor_cases(),
                "rotation": rotation_cases(),
                "attestation": attestation_cases(),
            }
        ),
    }
    envelopes = {
        "source": SOURCE_ENVELOPE,
        "keys": key_table(["A1", "A2", "B", "C", "C2", "D", "E", "Z", "X", "ANN", "BOB"]),
        "me": ME,
        "now_ms": NOW,
        "peers": {n: {"status": s, **keyset_json(k)} for n, (s, k) in PEERS.items()},
        "seen": [REPLAYED.hex()],
        **flatten({"envelope": envelope_cases(), "batch": batch_cases()}),
    }
    for name, data in (("descriptor.json", identity), ("envelope.json", envelopes)):
        (HERE / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
