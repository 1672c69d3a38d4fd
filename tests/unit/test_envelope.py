"""Envelopes and batches: vectors, the check order, two peers at once, bad bytes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import DEFAULT_LIMITS, decode, encode
from protocol.descriptor import (
    Descriptor,
    KeySet,
    apply_rotation,
    build_descriptor,
    build_rotation,
    verify_descriptor,
    verify_rotation,
)
from protocol.envelope import (
    Envelope,
    PeerView,
    accept_batch,
    accept_envelope,
    build_batch,
    build_envelope,
    pack_batches,
)
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.keys import SigningKey, sign_object
from tests.unit.test_descriptor import keyset
from tests.vectors import cases, load, seed

VECTORS = load("envelope.json")
DESC = lambda case: case["desc"]  # noqa: E731
T0 = 1_767_225_600_000


def vector_peers() -> dict[str, PeerView]:
    return {n: PeerView(p["status"], keyset(p)) for n, p in VECTORS["peers"].items()}


def accept_vector(data: bytes, **over: Any) -> Envelope:
    seen = {bytes.fromhex(i) for i in VECTORS["seen"]}
    args: dict[str, Any] = {
        "me": VECTORS["me"],
        "now_ms": VECTORS["now_ms"],
        "peers": vector_peers(),
        "seen": seen.__contains__,
    }
    return accept_envelope(data, **(args | over))


# ---------------------------------------------------------------------------- a pair of nodes


@dataclass
class Node:
    """One side of a pair: a name, its signing key, and what it knows of its peer."""

    name: str
    key: SigningKey
    peers: dict[str, PeerView] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    counter: int = 0

    def descriptor(self, now_ms: int) -> Descriptor:
        return build_descriptor(
            name=self.name,
            key=self.key,
            issued=now_ms,
            valid_until=now_ms + 86_400_000,
            endpoints={"inbox": f"https://{self.name}/pfp/inbox"},
        )

    def envelope(self, to: str, now_ms: int, kind: str = "node.ping", **body: Any) -> bytes:
        self.counter += 1
        eid = seed(f"{self.name} envelope {self.counter}")[:16]
        return build_envelope(
            id=eid, sender=self.name, to=to, ts=now_ms, kind=kind, body=body, key=self.key
        ).encode()

    def receive(self, data: bytes, now_ms: int) -> Envelope:
        env = accept_envelope(
            data, me=self.name, now_ms=now_ms, peers=self.peers, seen=self.seen.__contains__
        )
        self.seen.add(env.id)  # the node records ids after acceptance
        return env


@dataclass
class Pair:
    a: Node
    b: Node

    @classmethod
    def approved(cls, now_ms: int = T0) -> Pair:
        """A and B fetch each other's descriptor, check it and approve (pin) its keys."""
        a = Node("a.example", SigningKey(seed("pair a key 1")))
        b = Node("b.example", SigningKey(seed("pair b key 1")))
        for me, other in ((a, b), (b, a)):
            data = encode(other.descriptor(now_ms).to_wire())
            desc = verify_descriptor(data, expected_name=other.name, now_ms=now_ms)
            me.peers[other.name] = PeerView("approved", desc.keys)
        return cls(a, b)


@pytest.fixture
def pair() -> Iterator[Pair]:
    yield Pair.approved()


def test_pair_exchanges_envelopes_both_ways(pair: Pair) -> None:
    env = pair.b.receive(pair.a.envelope("b.example", T0), T0 + 1000)
    assert (env.sender, env.to, env.kind) == ("a.example", "b.example", "node.ping")
    assert pair.a.receive(pair.b.envelope("a.example", T0), T0).sender == "b.example"


def test_receiving_twice_is_a_replay(pair: Pair) -> None:
    data = pair.a.envelope("b.example", T0)
    pair.b.receive(data, T0)
    with pytest.raises(RemoteProtocolError, match="envelope.replay"):
        pair.b.receive(data, T0)


def test_rotation_keeps_the_pair_talking(pair: Pair) -> None:
    old, new = pair.a.key, SigningKey(seed("pair a key 2"))
    rotated_at = T0 + 60_000
    rot = build_rotation(node="a.example", old=old, new=new, ts=rotated_at)
    # Announced under the old key, before it expires.
    announce = pair.a.envelope(
        "b.example", rotated_at - 1, "node.rotation", rotation=encode(rot.to_wire())
    )
    env = pair.b.receive(announce, rotated_at - 1)
    pinned = pair.b.peers["a.example"].keys
    checked = verify_rotation(env.body["rotation"], expected_node="a.example", pinned=pinned)
    pair.b.peers["a.example"] = PeerView("approved", apply_rotation(pinned, checked))
    pair.a.key = new
    pair.b.receive(pair.a.envelope("b.example", rotated_at), rotated_at)
    pair.a.key = old  # a stolen old key is useless from the rotation on
    with pytest.raises(RemoteProtocolError, match="sig.key_expired"):
        pair.b.receive(pair.a.envelope("b.example", rotated_at), rotated_at)


def test_a_changed_key_without_rotation_is_refused(pair: Pair) -> None:
    pair.a.key = SigningKey(seed("pair a unannounced key"))
    with pytest.raises(RemoteProtocolError, match="sig.unknown_key"):
        pair.b.receive(pair.a.envelope("b.example", T0), T0)
    fetched = pair.a.descriptor(T0).keys  # the node sees a new key with no statement
    pair.b.peers["a.example"] = PeerView("key_changed", fetched)
    with pytest.raises(RemoteProtocolError, match="envelope.key_changed"):
        pair.b.receive(pair.a.envelope("b.example", T0), T0)


# ---------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("case", cases("envelope.json", "envelope_valid"), ids=DESC)
def test_envelope_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data"])
    env = accept_vector(data)
    assert env.id.hex() == case["id"]
    assert env.encode() == data


@pytest.mark.parametrize("case", cases("envelope.json", "envelope_invalid"), ids=DESC)
def test_envelope_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        accept_vector(bytes.fromhex(case["data"]))
    assert info.value.code == case["error"], case["desc"]


def batch_results(data: bytes, **limits: int) -> list[Envelope | ProtocolError]:
    seen = {bytes.fromhex(i) for i in VECTORS["seen"]}
    return accept_batch(
        data,
        me=VECTORS["me"],
        now_ms=VECTORS["now_ms"],
        peers=vector_peers(),
        seen=seen.__contains__,
        limits=replace(DEFAULT_LIMITS, **limits),
    )


@pytest.mark.parametrize("case", cases("envelope.json", "batch_valid"), ids=DESC)
def test_batch_vector(case: dict[str, Any]) -> None:
    results = batch_results(bytes.fromhex(case["data"]))
    codes = ["ok" if isinstance(r, Envelope) else r.code for r in results]
    assert codes == case["results"]


@pytest.mark.parametrize("case", cases("envelope.json", "batch_invalid"), ids=DESC)
def test_batch_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        batch_results(bytes.fromhex(case["data"]), **case.get("limits", {}))
    assert info.value.code == case["error"], case["desc"]


def test_batch_over_the_default_byte_limit_is_refused_before_parsing() -> None:
    spec = VECTORS["batch_too_large"]
    data = b"\xff" * (spec["max_batch_bytes"] + 1)  # not even msgpack: never parsed
    with pytest.raises(RemoteProtocolError) as info:
        batch_results(data)
    assert info.value.code == spec["error"]
    with pytest.raises(RemoteProtocolError) as info:
        accept_vector(data)
    assert info.value.code == spec["error"]


# ---------------------------------------------------------------------------- sending


def test_build_envelope_refuses_what_the_receiver_would(pair: Pair) -> None:
    with pytest.raises(LocalProtocolError) as info:
        pair.a.envelope("b.example", T0, "forum.gossip")
    assert info.value.code == "envelope.unknown_kind"
    entry = encode({"hub": "c.example"})
    with pytest.raises(LocalProtocolError) as info:
        pair.a.envelope("b.example", T0, "forum.invite", forum="!x:c.example", entry=entry)
    assert info.value.code == "envelope.origin_mismatch"


def test_build_batch_limits(pair: Pair) -> None:
    envs = [pair.a.envelope("b.example", T0) for _ in range(51)]
    with pytest.raises(LocalProtocolError, match="too_many"):
        build_batch(envs)
    with pytest.raises(LocalProtocolError, match="too_large"):
        build_batch(envs[:10], limits=replace(DEFAULT_LIMITS, max_batch_bytes=1000))


@pytest.mark.parametrize(("count", "max_bytes"), [(0, 1 << 20), (120, 1 << 20), (30, 1200)])
def test_pack_batches_fills_batches_within_limits(pair: Pair, count: int, max_bytes: int) -> None:
    limits = replace(DEFAULT_LIMITS, max_batch_bytes=max_bytes)
    envs = [pair.a.envelope("b.example", T0) for _ in range(count)]
    batches = pack_batches(envs, limits=limits)
    out = [e for b in batches for e in decode(b)["envelopes"]]
    assert out == envs
    assert all(len(b) <= max_bytes and len(decode(b)["envelopes"]) <= 50 for b in batches)
    results = [
        r
        for b in batches
        for r in accept_batch(
            b, me="b.example", now_ms=T0, peers=pair.b.peers, seen=lambda _: False, limits=limits
        )
    ]
    assert all(isinstance(r, Envelope) for r in results)


def test_peer_status_must_be_known() -> None:
    with pytest.raises(LocalProtocolError):
        PeerView("friendly", KeySet((SigningKey(seed("k")).verify_key,)))


# ---------------------------------------------------------------------------- bad bytes

GOOD = bytes.fromhex(cases("envelope.json", "envelope_valid")[1]["data"])  # forum.submit


@settings(max_examples=500, deadline=None)
@given(at=st.integers(0, len(GOOD) - 1), byte=st.integers(0, 255))
def test_single_byte_mutation_is_refused_or_identical(at: int, byte: int) -> None:
    original = accept_vector(GOOD)
    mutated = GOOD[:at] + bytes([byte]) + GOOD[at + 1 :]
    try:
        result = accept_vector(mutated)
    except ProtocolError:
        return
    assert result == original


def test_every_prefix_is_truncated() -> None:
    for end in range(len(GOOD)):
        with pytest.raises(RemoteProtocolError) as info:
            accept_vector(GOOD[:end])
        assert info.value.code == "codec.truncated", end


def test_batch_prefixes_are_truncated() -> None:
    good = bytes.fromhex(cases("envelope.json", "batch_valid")[0]["data"])
    for end in range(len(good)):
        with pytest.raises(RemoteProtocolError) as info:
            batch_results(good[:end])
        assert info.value.code == "codec.truncated", end


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_protocol_errors(junk: bytes) -> None:
    with pytest.raises(ProtocolError):
        accept_vector(junk)
    with contextlib.suppress(ProtocolError):
        batch_results(junk)


@settings(max_examples=200, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(["forum", "events", "entries", "entry", "rotation"]),
        st.one_of(
            st.binary(max_size=40),
            st.text(max_size=5),
            st.lists(st.binary(max_size=40), max_size=3),
        ),
    ),
    kind=st.sampled_from(["forum.submit", "forum.entries", "forum.invite", "node.rotation"]),
)
def test_malformed_bodies_of_signed_envelopes_raise_protocol_errors(
    body: dict[str, Any], kind: str
) -> None:
    key = SigningKey(seed("node a.example key 2"))
    env = Envelope(
        seed("fuzz")[:16],
        "a.example",
        "b.example",
        VECTORS["now_ms"],
        kind,
        body,
        key.key_id,
        bytes(64),
    )
    data = encode(sign_object("envelope", env.unsigned(), key))
    with contextlib.suppress(ProtocolError):
        accept_vector(data)
