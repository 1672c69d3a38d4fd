"""Canonical codec: vectors, properties, byte-at-a-time decoding."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import DEFAULT_LIMITS, Limits, _StrictReader, decode, encode
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from tests.vectors import cases, load


def _value(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"$bin"}:
        return bytes.fromhex(v["$bin"])
    if isinstance(v, dict):
        return {k: _value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


@pytest.mark.parametrize("case", cases("codec.json", "valid"), ids=lambda c: c["desc"])
def test_valid_vector(case: dict[str, Any]) -> None:
    value = _value(case["value"])
    data = bytes.fromhex(case["hex"])
    assert encode(value) == data
    assert decode(data) == value


@pytest.mark.parametrize("case", cases("codec.json", "invalid"), ids=lambda c: c["desc"])
def test_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(bytes.fromhex(case["hex"]))
    assert info.value.code == case["error"]


def test_too_large_is_refused_before_parsing() -> None:
    spec = load("codec.json")["too_large"]
    data = (
        b"\xc6" + (spec["max_object_bytes"]).to_bytes(4, "big") + b"\0" * spec["max_object_bytes"]
    )
    with pytest.raises(RemoteProtocolError) as info:
        decode(data)
    assert info.value.code == spec["error"]


def test_encoder_refuses_what_the_profile_forbids() -> None:
    for bad, code in [
        (1.5, "codec.float"),
        ({1: "x"}, "codec.non_text_key"),
        (2**64, "codec.bad_type"),
        (-(2**63) - 1, "codec.bad_type"),
        (object(), "codec.bad_type"),
        ("\ud800", "codec.invalid_utf8"),
    ]:
        with pytest.raises(LocalProtocolError) as info:
            encode(bad)
        assert info.value.code == code
    deep: Any = []
    for _ in range(DEFAULT_LIMITS.max_depth):
        deep = [deep]
    with pytest.raises(LocalProtocolError, match="too_deep"):
        encode(deep)


def test_limits_can_be_lowered() -> None:
    small = Limits(max_object_bytes=8)
    with pytest.raises(RemoteProtocolError) as info:
        decode(encode("x" * 20), small)
    assert info.value.code == "codec.too_large"


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_round_trip_is_identity(value: Any) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@given(values)
@settings(max_examples=200, deadline=None)
def test_canonical_form_is_what_msgpack_packs_for_sorted_maps(value: Any) -> None:
    def sort(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: sort(v[k]) for k in sorted(v, key=lambda k: k.encode())}
        if isinstance(v, list):
            return [sort(x) for x in v]
        return v

    assert encode(value) == msgpack.packb(sort(value), use_bin_type=True)


@given(values, st.data())
@settings(max_examples=200, deadline=None)
def test_single_byte_mutation_is_refused_or_canonical(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(encode(value))
    i = data.draw(st.integers(0, len(encoded) - 1))
    encoded[i] = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[i]))
    try:
        decoded = decode(bytes(encoded))
    except ProtocolError:
        return
    # Whatever it accepted must be the one canonical encoding of what it decoded.
    assert encode(decoded) == bytes(encoded)


@given(values)
@settings(max_examples=100, deadline=None)
def test_every_strict_prefix_is_refused(value: Any) -> None:
    data = encode(value)
    for n in range(len(data)):
        with pytest.raises(RemoteProtocolError) as info:
            decode(data[:n])
        assert info.value.code in ("codec.truncated", "codec.trailing_bytes")


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        value = decode(data)
    except ProtocolError:
        return
    assert encode(value) == data


# ---------------------------------------------------------------------------- fast path

def _strict(data: bytes) -> Any:
    """What the byte-by-byte reader alone accepts (the fast path must agree with it)."""
    reader = _StrictReader(data, DEFAULT_LIMITS)
    value = reader.read_value(1)
    if reader.pos != len(data) or encode(value) != data:
        raise RemoteProtocolError("codec.bad_type", "not canonical")
    return value


def _outcome(fn: Any, data: bytes) -> tuple[bool, Any]:
    try:
        return True, fn(data)
    except (ProtocolError, ValueError, TypeError):
        return False, None


# Anything msgpack can pack, in any key order: unsorted and non-text keys, floats, ext.
loose = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=8) | st.text(max_size=6) | st.floats(allow_nan=False)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.integers(-3, 3), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(loose)
@settings(max_examples=400, deadline=None)
def test_the_fast_path_accepts_exactly_what_the_strict_reader_accepts(value: Any) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    assert _outcome(decode, data) == _outcome(_strict, data)


@pytest.mark.parametrize("depth", [15, 16, 17])
def test_depth_is_counted_as_the_encoder_counts_it(depth: int) -> None:
    for leaf in (1, [], {}):  # a scalar, an empty list and an empty map at the bottom
        deep: Any = leaf
        for _ in range(depth - 1):
            deep = [deep]
        data = msgpack.packb(deep, use_bin_type=True)
        assert _outcome(decode, data) == _outcome(_strict, data)
        assert _outcome(decode, data)[0] == (depth <= DEFAULT_LIMITS.max_depth)


def test_duplicate_and_unsorted_keys_leave_the_fast_path() -> None:
    dup = b"\x82\xa1a\x01\xa1a\x02"  # {"a": 1, "a": 2}
    unsorted = b"\x82\xa1b\x01\xa1a\x02"  # {"b": 1, "a": 2}
    for data, code in ((dup, "codec.duplicate_key"), (unsorted, "codec.unsorted_keys")):
        with pytest.raises(RemoteProtocolError) as info:
            decode(data)
        assert info.value.code == code
