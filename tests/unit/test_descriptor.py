"""Node identity: descriptor, rotation and attestation vectors, key validity, mutations."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import encode
from protocol.descriptor import (
    Attestation,
    Descriptor,
    Device,
    KeySet,
    OldKey,
    Rotation,
    apply_rotation,
    build_attestation,
    build_descriptor,
    build_rotation,
    key_valid_at,
    verify_attestation,
    verify_descriptor,
    verify_rotation,
)
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.keys import AgreementKey, SigningKey
from tests.vectors import cases, seed

T0 = 1_767_225_600_000
DESC = lambda case: case["desc"]  # noqa: E731
DAY = 24 * 3600 * 1000


def keyset(obj: dict[str, Any]) -> KeySet:
    """A key set from its JSON form in the vectors (keys as hex)."""
    return KeySet.from_wire(
        {
            "keys": [{"kid": k["kid"], "key": bytes.fromhex(k["key"])} for k in obj["keys"]],
            "old_keys": [
                {"kid": k["kid"], "key": bytes.fromhex(k["key"]), "expired": k["expired"]}
                for k in obj["old_keys"]
            ],
        }
    )


def key(label: str) -> SigningKey:
    return SigningKey(seed(label))


A1, A2, X = key("node a.example key 1"), key("node a.example key 2"), key("stranger key")
INBOX = {"inbox": "https://a.example/pfp/inbox"}


def descriptor(**over: Any) -> Descriptor:
    args: dict[str, Any] = {
        "name": "a.example",
        "key": A1,
        "issued": T0,
        "valid_until": T0 + DAY,
        "endpoints": INBOX,
    }
    return build_descriptor(**(args | over))


def attestation(**over: Any) -> Attestation:
    device = Device(key("ann sign").verify_key, AgreementKey(seed("ann agree")).public)
    args: dict[str, Any] = {
        "node": "a.example",
        "member": "@ann:a.example",
        "org": "Acme",
        "devices": [device],
        "ts": T0,
        "key": A1,
    }
    return build_attestation(**(args | over))


# ---------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("case", cases("descriptor.json", "descriptor_valid"), ids=DESC)
def test_descriptor_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data"])
    desc = verify_descriptor(data, expected_name=case["expected_name"], now_ms=case["now_ms"])
    assert desc.kid == case["kid"] and desc.name == case["expected_name"]
    assert encode(desc.to_wire()) == data


@pytest.mark.parametrize("case", cases("descriptor.json", "descriptor_invalid"), ids=DESC)
def test_descriptor_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        verify_descriptor(
            bytes.fromhex(case["data"]), expected_name=case["expected_name"], now_ms=case["now_ms"]
        )
    assert info.value.code == case["error"], case["desc"]


@pytest.mark.parametrize("case", cases("descriptor.json", "rotation_valid"), ids=DESC)
def test_rotation_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data"])
    pinned = keyset(case["pinned"])
    rot = verify_rotation(data, expected_node=case["expected_node"], pinned=pinned)
    assert encode(rot.to_wire()) == data
    assert apply_rotation(pinned, rot) == keyset(case["after"])


@pytest.mark.parametrize("case", cases("descriptor.json", "rotation_invalid"), ids=DESC)
def test_rotation_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        verify_rotation(
            bytes.fromhex(case["data"]),
            expected_node=case["expected_node"],
            pinned=keyset(case["pinned"]),
        )
    assert info.value.code == case["error"], case["desc"]


@pytest.mark.parametrize("case", cases("descriptor.json", "attestation_valid"), ids=DESC)
def test_attestation_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data"])
    att = verify_attestation(data, expected_node=case["expected_node"], keys=keyset(case["keys"]))
    assert [d.device_id for d in att.devices] == [case["device_id"]]
    assert [d.agree.key_id for d in att.devices] == [case["agree_id"]]
    assert encode(att.to_wire()) == data


@pytest.mark.parametrize("case", cases("descriptor.json", "attestation_invalid"), ids=DESC)
def test_attestation_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        verify_attestation(
            bytes.fromhex(case["data"]),
            expected_node=case["expected_node"],
            keys=keyset(case["keys"]),
        )
    assert info.value.code == case["error"], case["desc"]


# ---------------------------------------------------------------------------- key validity


def test_old_key_is_valid_only_strictly_before_it_expired() -> None:
    keys = KeySet((A2.verify_key,), (OldKey(A1.verify_key, T0),))
    assert key_valid_at(keys, A2.key_id, T0 + 10 * DAY) == A2.verify_key
    assert key_valid_at(keys, A1.key_id, T0 - 1) == A1.verify_key
    for ts, code in ((T0, "sig.key_expired"), (T0 - 1, "sig.unknown_key")):
        with pytest.raises(RemoteProtocolError) as info:
            key_valid_at(keys, A1.key_id if ts == T0 else X.key_id, ts)
        assert info.value.code == code
    desc = descriptor(key=A2, keys=keys)
    assert key_valid_at(desc, A1.key_id, T0 - 1) == A1.verify_key


def test_key_set_refuses_a_key_listed_twice_or_none() -> None:
    with pytest.raises(RemoteProtocolError, match="twice"):
        KeySet((A1.verify_key,), (OldKey(A1.verify_key, T0),))
    with pytest.raises(RemoteProtocolError):
        KeySet(())


def test_wire_kid_must_name_its_key() -> None:
    wire = descriptor().to_wire()
    wire["keys"] = [{"kid": A2.key_id, "key": A1.verify_key.raw}]
    with pytest.raises(RemoteProtocolError) as info:
        Descriptor.from_wire(wire)
    assert info.value.code == "schema.bad_value"


def test_rotation_applied_twice_is_stable() -> None:
    rot = build_rotation(node="a.example", old=A1, new=A2, ts=T0)
    once = apply_rotation(KeySet((A1.verify_key,)), rot)
    assert apply_rotation(once, rot) == once
    assert once.current == (A2.verify_key,) and once.old == (OldKey(A1.verify_key, T0),)


# ---------------------------------------------------------------------------- building


def test_building_what_a_peer_would_refuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError) as info:
        descriptor(valid_until=T0 + 7 * DAY + 1)
    assert info.value.code == "descriptor.validity_too_long"
    with pytest.raises(LocalProtocolError) as info:
        descriptor(keys=KeySet((A2.verify_key,)))
    assert info.value.code == "sig.unknown_key"
    with pytest.raises(LocalProtocolError) as info:
        attestation(member="@ann:c.example")
    assert info.value.code == "attestation.invalid"
    with pytest.raises(LocalProtocolError):
        build_rotation(node="a.example", old=A1, new=A1, ts=T0)


def test_descriptor_needs_an_inbox_and_pfp1() -> None:
    for over, code in (
        ({"endpoints": {"web": "https://a.example/"}}, "schema.missing_field"),
        ({"endpoints": {"inbox": "ftp://a.example/"}}, "schema.bad_value"),
        ({"versions": ["PFP/2"]}, "schema.unsupported_version"),
        ({"name": "A.example"}, "identity.bad_node_name"),
    ):
        with pytest.raises(LocalProtocolError) as info:
            descriptor(**over)
        assert info.value.code == code


def test_descriptor_validity_edges() -> None:
    data = encode(descriptor(valid_until=T0 + 7 * DAY).to_wire())
    verify_descriptor(data, expected_name="a.example", now_ms=T0 + 7 * DAY)  # inclusive
    verify_descriptor(data, expected_name="a.example", now_ms=T0 - 300_000)  # within skew
    with pytest.raises(RemoteProtocolError, match="not_yet_valid"):
        verify_descriptor(data, expected_name="a.example", now_ms=T0 - 300_001)


def test_optional_attestation_fields_round_trip() -> None:
    att = attestation(title="CFO", industry="Retail")
    wire = att.to_wire()
    assert wire["title"] == "CFO" and "industry" in wire
    assert Attestation.from_wire(wire) == att
    assert "title" not in attestation().to_wire()


# ---------------------------------------------------------------------------- bad bytes

SIGNED = {
    "descriptor": (
        encode(descriptor().to_wire()),
        lambda d: verify_descriptor(d, expected_name="a.example", now_ms=T0 + 1),
    ),
    "rotation": (
        encode(build_rotation(node="a.example", old=A1, new=A2, ts=T0).to_wire()),
        lambda d: verify_rotation(d, expected_node="a.example", pinned=KeySet((A1.verify_key,))),
    ),
    "attestation": (
        encode(attestation(title="CEO").to_wire()),
        lambda d: verify_attestation(d, expected_node="a.example", keys=KeySet((A1.verify_key,))),
    ),
}


@pytest.mark.parametrize("kind", sorted(SIGNED))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_single_byte_mutation_is_refused_or_identical(kind: str, data: st.DataObject) -> None:
    good, verify = SIGNED[kind]
    original = verify(good)
    at = data.draw(st.integers(0, len(good) - 1))
    byte = data.draw(st.integers(0, 255))
    mutated = good[:at] + bytes([byte]) + good[at + 1 :]
    try:
        result = verify(mutated)
    except ProtocolError:
        return
    assert result == original


@pytest.mark.parametrize("kind", sorted(SIGNED))
def test_every_prefix_is_truncated(kind: str) -> None:
    good, verify = SIGNED[kind]
    for end in range(len(good)):
        with pytest.raises(RemoteProtocolError) as info:
            verify(good[:end])
        assert info.value.code == "codec.truncated", end


@pytest.mark.parametrize("kind", sorted(SIGNED))
@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_errors(kind: str, junk: bytes) -> None:
    with pytest.raises(ProtocolError):
        SIGNED[kind][1](junk)


def test_from_wire_round_trips() -> None:
    desc = descriptor()
    assert Descriptor.from_wire(desc.to_wire()) == desc
    rot = build_rotation(node="a.example", old=A1, new=A2, ts=T0)
    assert Rotation.from_wire(rot.to_wire()) == rot
