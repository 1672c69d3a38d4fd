"""Forum log: vectors, round trips, byte mutations, equivocation proofs, hub move quorums."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import decode, encode
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.hubmove import (
    HubMoveCertificate,
    HubMoveStatement,
    build_hub_move,
    sign_hub_move,
    verify_hub_move,
)
from protocol.identity import check_forum_id, forum_origin, make_forum_id
from protocol.keys import SigningKey, VerifyKey
from protocol.log import (
    ZERO_HASH,
    Cosignature,
    Entry,
    EquivocationProof,
    Event,
    Head,
    append_entry,
    build_event,
    build_head,
    cosign_head,
    make_equivocation_proof,
    preverify,
    verify_cosignature,
    verify_entry,
    verify_equivocation,
    verify_event,
    verify_head,
)
from specs.vectors.generate_forum import T0, Chain, Scene
from tests.vectors import cases, load, seed

VEC = load("forum-log.json")
HUB = VerifyKey(bytes.fromhex(VEC["hub_key"]))
ENTRIES = [Entry.from_bytes(bytes.fromhex(e["encoded"])) for e in VEC["entries"]]


def _key(hexkey: str) -> VerifyKey:
    return VerifyKey(bytes.fromhex(hexkey))


# ---------------------------------------------------------------------------- vectors


def test_event_vector() -> None:
    v = VEC["event"]
    raw = bytes.fromhex(v["encoded"])
    event = Event.from_bytes(raw)
    assert event.event_id.hex() == v["event_id"]
    assert encode(event.to_wire()) == raw
    assert SigningKey(seed(v["device_seed_label"])).verify_key == _key(v["device_key"])
    verify_event(event, _key(v["device_key"]))
    with pytest.raises(RemoteProtocolError) as exc:
        verify_event(event, HUB)
    assert exc.value.code == "sig.unknown_key"


def test_entry_chain_vector() -> None:
    prev = ZERO_HASH
    for seq, (entry, v) in enumerate(zip(ENTRIES, VEC["entries"], strict=True), start=1):
        verify_entry(entry, HUB, seq=seq, prev=prev)
        assert entry.hash.hex() == v["hash"]
        prev = entry.hash
    assert forum_origin(ENTRIES[0].forum) == "acme.example" == ENTRIES[0].hub


def test_head_and_cosignature_vector() -> None:
    head = Head.from_bytes(bytes.fromhex(VEC["head"]["encoded"]))
    verify_head(head, _key(VEC["head"]["hub_key"]))
    assert (head.seq, head.hash) == (3, ENTRIES[2].hash)
    cosig = Cosignature.from_wire(decode(bytes.fromhex(VEC["cosignature"]["encoded"])))
    verify_cosignature(cosig, _key(VEC["cosignature"]["node_key"]), head)
    with pytest.raises(RemoteProtocolError) as exc:
        verify_cosignature(cosig, HUB, head)
    assert exc.value.code == "head.invalid"


@pytest.mark.parametrize("case", VEC["equivocation"], ids=lambda c: c["desc"])
def test_equivocation_vector_verifies_offline(case: dict[str, Any]) -> None:
    proof = EquivocationProof.from_wire(decode(bytes.fromhex(case["proof"])))
    verify_equivocation(proof, HUB)
    verify_equivocation(proof)  # self-contained: the proof carries the hub's key
    assert encode(proof.to_wire()).hex() == case["proof"]


def test_hub_move_vector() -> None:
    v = VEC["hub_move"]
    cert = HubMoveCertificate.from_wire(decode(bytes.fromhex(v["certificate"])))
    roster = {m: {k: _key(x) for k, x in devs.items()} for m, devs in v["roster"].items()}
    verify_hub_move(cert, roster)
    assert encode(cert.to_wire()).hex() == v["certificate"]


@pytest.mark.parametrize("case", cases("forum-log.json", "invalid"), ids=lambda c: c["desc"])
def test_invalid_vector(case: dict[str, Any]) -> None:
    roster_v = VEC["hub_move"]["roster"]
    with pytest.raises(RemoteProtocolError) as exc:
        if case["kind"] == "entry":
            entry = Entry.from_bytes(bytes.fromhex(case["entry"]))
            verify_entry(
                entry, _key(case["hub_key"]), seq=case["seq"], prev=bytes.fromhex(case["prev"])
            )
        elif case["kind"] == "equivocation":
            proof = EquivocationProof.from_wire(decode(bytes.fromhex(case["proof"])))
            verify_equivocation(proof, _key(case["hub_key"]))
        else:
            cert = HubMoveCertificate.from_wire(decode(bytes.fromhex(case["certificate"])))
            roster = {m: {k: _key(x) for k, x in d.items()} for m, d in roster_v.items()}
            verify_hub_move(cert, roster)
    assert exc.value.code == case["error"]


# ---------------------------------------------------------------------------- objects


def test_round_trips() -> None:
    for entry in ENTRIES:
        assert Entry.from_wire(entry.to_wire()) == entry
        assert encode(entry.to_wire()) == entry.raw
        ev = entry.signed_event
        assert Event.from_wire(ev.to_wire()).raw == ev.raw == entry.event
        assert set(ev.header()) == {"v", "forum", "type", "author", "kid", "ts", "nonce", "epoch"}


def test_forum_ids() -> None:
    fid = make_forum_id(bytes(16), "acme.example")
    assert check_forum_id(fid) == fid and forum_origin(fid) == "acme.example"
    for bad in ("acme", "!short:acme.example", "!" + "A" * 22 + ":Bad_Host", 7):
        with pytest.raises(RemoteProtocolError) as exc:
            check_forum_id(bad)
        assert exc.value.code == "schema.bad_value"


def test_event_size_limit() -> None:
    scene = Scene()
    with pytest.raises(LocalProtocolError) as exc:
        scene.event("post", "@a:acme.example", {"ct": b"x" * 70_000}, epoch=0, ts=T0)
    assert exc.value.code == "event.too_large"


def test_event_fields_are_checked() -> None:
    wire = ENTRIES[2].signed_event.to_wire()
    for name, value, code in [
        ("v", 2, "schema.unsupported_version"),
        ("nonce", b"short", "schema.bad_value"),
        ("epoch", -1, "schema.bad_value"),
        ("author", "alice", "identity.bad_member_id"),
        ("kid", "k12", "schema.bad_value"),
        ("kid", wire["kid"] + "\n", "schema.bad_value"),  # the whole str is the key id
        ("type", "Post!", "schema.bad_value"),
        ("body", [], "schema.wrong_type"),
    ]:
        with pytest.raises(RemoteProtocolError) as exc:
            Event.from_wire({**wire, name: value})
        assert exc.value.code == code, name
    with pytest.raises(RemoteProtocolError) as exc:
        Event.from_wire({**wire, "extra": 1})
    assert exc.value.code == "schema.unknown_field"


def test_entry_for_another_forum_is_refused() -> None:
    other = make_forum_id(bytes(16), "acme.example")
    wire = {**ENTRIES[0].to_wire(), "forum": other}
    with pytest.raises(RemoteProtocolError) as exc:
        Entry.from_wire(wire)
    assert exc.value.code == "event.wrong_forum"


def test_append_entry_chain_rule() -> None:
    key = SigningKey(seed("node acme.example"))
    with pytest.raises(LocalProtocolError):
        append_entry(ZERO_HASH, 2, ENTRIES[0].event, key, "acme.example", T0)
    with pytest.raises(LocalProtocolError):
        append_entry(ENTRIES[0].hash, 1, ENTRIES[0].event, key, "acme.example", T0)


# ---------------------------------------------------------------------------- mutations


def _rejected_or_identical(data: bytes, original: Entry) -> None:
    try:
        entry = Entry.from_bytes(data)
        verify_entry(entry, HUB, seq=original.seq, prev=original.prev)
        verify_event(entry.signed_event, VerifyKey(_author_key(original)))
    except ProtocolError:
        return
    assert entry.raw == original.raw and entry.hash == original.hash


def _author_key(entry: Entry) -> bytes:
    return SigningKey(seed(f"device {entry.signed_event.author} 0 sign")).verify_key.raw


def test_every_byte_flip_of_an_entry_is_rejected() -> None:
    original = ENTRIES[2]
    for i in range(len(original.raw)):
        for flip in (0x01, 0x80):
            mutated = bytearray(original.raw)
            mutated[i] ^= flip
            _rejected_or_identical(bytes(mutated), original)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_mutation_is_rejected(data: st.DataObject) -> None:
    original = ENTRIES[data.draw(st.integers(0, len(ENTRIES) - 1))]
    i = data.draw(st.integers(0, len(original.raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original.raw[i]))
    mutated = bytearray(original.raw)
    mutated[i] = value
    _rejected_or_identical(bytes(mutated), original)


# ---------------------------------------------------------------------------- equivocation


def _forks() -> tuple[Scene, Entry, Entry, SigningKey]:
    scene = Scene()
    fork = Chain(scene, ENTRIES)
    a = fork.seal(scene.content("post", "@alice:acme.example", "A", epoch=1, ts=T0), ts=T0)
    b = fork.seal(scene.content("post", "@alice:acme.example", "B", epoch=1, ts=T0), ts=T0)
    return scene, a, b, scene.node_key["acme.example"]


def _refused(make: Any) -> None:
    with pytest.raises(ProtocolError) as exc:
        make()
    assert exc.value.code == "equivocation.invalid"


def test_equivocation_proofs() -> None:
    scene, a, b, hub = _forks()
    head_b = build_head(a.forum, 4, b.hash, hub, "acme.example", T0)
    pairs: list[tuple[Entry, Entry | Head]] = [(a, b), (b, a), (a, head_b)]
    for x, y in pairs:
        proof = make_equivocation_proof(x, y, hub.verify_key)
        verify_equivocation(EquivocationProof.from_wire(decode(encode(proof.to_wire()))))
    head_a = build_head(a.forum, 4, a.hash, hub, "acme.example", T0)
    _refused(lambda: make_equivocation_proof(a, a, hub.verify_key))  # same hash
    _refused(lambda: make_equivocation_proof(a, head_a, hub.verify_key))  # agree
    _refused(lambda: make_equivocation_proof(ENTRIES[2], a, hub.verify_key))  # other seq
    _refused(lambda: make_equivocation_proof(a, b, scene.node_key["globex.example"].verify_key))
    other = build_head(a.forum, 4, b.hash, scene.node_key["globex.example"], "acme.example", T0)
    _refused(lambda: make_equivocation_proof(a, other, hub.verify_key))  # bad sig


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_tampered_proof_is_refused(data: st.DataObject) -> None:
    _, a, b, hub = _forks()
    proof = make_equivocation_proof(a, b, hub.verify_key)
    which = data.draw(st.integers(0, 1))
    kind, raw = proof.items[which]
    i = data.draw(st.integers(0, len(raw) - 1))
    mutated = bytearray(raw)
    mutated[i] ^= data.draw(st.integers(1, 255))
    items = list(proof.items)
    items[which] = (kind, bytes(mutated))
    bad = EquivocationProof(proof.forum, proof.seq, proof.hub, proof.key, (items[0], items[1]))
    _refused(lambda: verify_equivocation(bad, hub.verify_key))


# ---------------------------------------------------------------------------- hub move quorum


def _roster(n: int) -> tuple[dict[str, dict[str, VerifyKey]], list[tuple[str, SigningKey]]]:
    people = [(f"@m{i}:acme.example", SigningKey(seed(f"quorum {i}"))) for i in range(n)]
    return {m: {k.key_id: k.verify_key} for m, k in people}, people


STATEMENT = HubMoveStatement(ENTRIES[0].forum, 3, ENTRIES[2].hash, "acme.example", "globex.example")


@pytest.mark.parametrize("n", range(1, 8))
def test_quorum_is_a_strict_majority(n: int) -> None:
    roster, people = _roster(n)
    for k in range(n + 1):
        cert = build_hub_move(
            STATEMENT, [sign_hub_move(STATEMENT, m, key) for m, key in people[:k]]
        )
        cert = HubMoveCertificate.from_wire(decode(encode(cert.to_wire())))
        if 2 * k > n:
            verify_hub_move(cert, roster)
        else:
            with pytest.raises(RemoteProtocolError) as exc:
                verify_hub_move(cert, roster)
            assert exc.value.code == "hubmove.no_quorum", (n, k)


def _invalid(cert: HubMoveCertificate, roster: dict[str, dict[str, VerifyKey]]) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        verify_hub_move(cert, roster)
    assert exc.value.code == "hubmove.invalid"


def test_quorum_edge_cases() -> None:
    roster, people = _roster(3)
    sigs = [sign_hub_move(STATEMENT, m, key) for m, key in people]
    _invalid(build_hub_move(STATEMENT, [sigs[0], sigs[0], sigs[1]]), roster)  # same member twice
    stranger = sign_hub_move(STATEMENT, "@x:acme.example", SigningKey(seed("stranger")))
    _invalid(build_hub_move(STATEMENT, [*sigs, stranger]), roster)  # not an active member
    wrong_device = sign_hub_move(STATEMENT, people[0][0], SigningKey(seed("other device")))
    _invalid(build_hub_move(STATEMENT, [wrong_device, *sigs[1:]]), roster)  # unregistered device
    other = HubMoveStatement(STATEMENT.forum, 2, STATEMENT.last_hash, "acme.example", "x.example")
    _invalid(HubMoveCertificate(other, tuple(sigs)), roster)  # signatures over another statement
    same = HubMoveStatement(STATEMENT.forum, 3, STATEMENT.last_hash, "acme.example", "acme.example")
    signed_same = [sign_hub_move(same, m, key) for m, key in people]
    _invalid(build_hub_move(same, signed_same), roster)  # the hub does not move
    with pytest.raises(RemoteProtocolError) as exc:
        verify_hub_move(build_hub_move(STATEMENT, []), {})
    assert exc.value.code == "hubmove.no_quorum"


def test_build_event_signs_with_the_device() -> None:
    key = SigningKey(seed("device x"))
    ev = build_event(
        forum=ENTRIES[0].forum, type="post", author="@x:acme.example", device_key=key,
        ts=T0, nonce=bytes(16), epoch=3, body={"ct": {}},
    )  # fmt: skip
    assert ev.kid == key.key_id
    verify_event(ev, key.verify_key)
    cosig = cosign_head(
        build_head(ev.forum, 1, ev.event_id, key, "acme.example", T0), key, "a.b", T0
    )
    verify_cosignature(cosig, key.verify_key)


def test_signing_input_cut_from_raw_equals_reencoding() -> None:
    from protocol.keys import signing_input
    from protocol.log import _unsigned_input

    for entry in ENTRIES:
        for domain, obj in (("entry", entry), ("event", entry.signed_event)):
            wire = obj.to_wire()
            unsigned = {k: v for k, v in wire.items() if k != "sig"}
            assert _unsigned_input(domain, wire, obj.raw) == signing_input(domain, unsigned)


def test_moved_names_stay_importable_from_log() -> None:
    # node/ imports these from protocol.log; they moved but must stay the same objects there.
    from protocol import hubmove, identity, log

    moved = {
        hubmove: ("HubMoveStatement", "HubMoveSignature", "HubMoveCertificate")
        + ("sign_hub_move", "build_hub_move", "verify_hub_move"),
        identity: ("make_forum_id", "check_forum_id", "forum_origin"),
    }
    for module, names in moved.items():
        for name in names:
            assert getattr(log, name) is getattr(module, name), name


# ---------------------------------------------------------------------------- preverify


def test_preverify_fills_the_cache_the_checks_consult(monkeypatch: pytest.MonkeyPatch) -> None:
    import protocol.log as log_module

    monkeypatch.setattr(log_module, "_VERIFIED", OrderedDict())
    checks = [c for e in ENTRIES for c in ((e, HUB), (e.signed_event, VerifyKey(_author_key(e))))]
    assert preverify(checks) == 2 * len(ENTRIES)

    def broken(self: VerifyKey, message: bytes, signature: bytes) -> None:
        raise AssertionError("verified again: the cache was not consulted")

    monkeypatch.setattr(VerifyKey, "verify", broken)
    for e in ENTRIES:  # answered from what preverify remembered
        verify_entry(e, HUB)
        verify_event(e.signed_event, VerifyKey(_author_key(e)))


def test_preverify_decides_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import protocol.log as log_module

    monkeypatch.setattr(log_module, "_VERIFIED", OrderedDict())
    good = ENTRIES[1]
    wire = good.to_wire()
    forged = Entry.from_bytes(encode({**wire, "sig": bytes(64)}))
    author = VerifyKey(_author_key(good))
    # A bad signature, the wrong key, no key: skipped, and the checks still refuse.
    checks = [(forged, HUB), (good, author), (good, None), (good.signed_event, HUB)]
    assert preverify(checks) == 0
    assert log_module._VERIFIED == {}
    with pytest.raises(RemoteProtocolError) as exc:
        verify_entry(forged, HUB)
    assert exc.value.code == "sig.invalid"
