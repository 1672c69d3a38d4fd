"""Canonical msgpack (specs/protocol.md §2).

One strict profile: nil, bool, int (-2**63 .. 2**64-1), bin, str (valid UTF-8), array,
map with str keys in ascending UTF-8 byte order; no floats, no ext; every integer and
length in its smallest format; depth <= ``Limits.max_depth``; no trailing bytes.

``encode`` produces the one canonical form. ``decode`` accepts only that form: a fast
path lets the C msgpack parser read the bytes and packs the result again (one walk in
Python checks key order and types), and if anything differs a strict byte-by-byte
reader names the exact rule broken.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from .errors import LocalProtocolError, RemoteProtocolError

Value = Any  # None | bool | int | bytes | str | list[Value] | dict[str, Value]

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1


@dataclass(frozen=True)
class Limits:
    """Protocol limits (specs/protocol.md §Limits). Nodes may lower, never raise, them."""

    max_depth: int = 16
    max_object_bytes: int = 1024 * 1024  # any single decoded object
    max_event_bytes: int = 64 * 1024
    max_batch_envelopes: int = 50
    max_batch_bytes: int = 1024 * 1024
    skew_seconds: int = 300
    replay_window_seconds: int = 900  # > 2 * skew: the replay cache outlives the window
    max_descriptor_validity_seconds: int = 7 * 24 * 3600
    max_backfill_page: int = 500


DEFAULT_LIMITS: Final = Limits()


# ---------------------------------------------------------------------------- encode


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8")


def _canonicalize(value: Value, depth: int, limits: Limits) -> Value:
    """Validate types and return a structure whose dict order is canonical.

    Every event, entry and envelope passes here (decoding re-encodes), so the common
    exact types are dispatched on ``type()`` first; anything else (subclasses, bad types)
    takes the general path below, which decides every error exactly as before.
    """
    if depth > limits.max_depth:
        raise LocalProtocolError("codec.too_deep", f"depth exceeds {limits.max_depth}")
    t = type(value)
    if t is bytes or t is bool or value is None:
        return value
    if t is str:
        if value.isascii():  # ASCII is valid UTF-8: skip the encode that checks it
            return value
    elif t is int:
        if INT_MIN <= value <= INT_MAX:
            return value
    elif t is dict:
        if all(type(k) is str and k.isascii() for k in value):
            # For ASCII keys, str order is UTF-8 byte order: sort without a key function.
            return {k: _canonicalize(value[k], depth + 1, limits) for k in sorted(value)}
    elif t is list:
        return [_canonicalize(v, depth + 1, limits) for v in value]
    return _canonicalize_any(value, depth, limits)


def _canonicalize_any(value: Value, depth: int, limits: Limits) -> Value:
    if value is None or isinstance(value, (bool, bytes, str)):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise LocalProtocolError("codec.invalid_utf8", "str is not valid UTF-8") from exc
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise LocalProtocolError("codec.bad_type", "integer out of range")
        return value
    if isinstance(value, (list, tuple)):
        return [_canonicalize(v, depth + 1, limits) for v in value]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise LocalProtocolError("codec.non_text_key", f"map key {k!r} is not a str")
        keys = sorted(value, key=_key_bytes)
        return {k: _canonicalize(value[k], depth + 1, limits) for k in keys}
    if isinstance(value, float):
        raise LocalProtocolError("codec.float", "floats are not allowed")
    raise LocalProtocolError("codec.bad_type", f"cannot encode {type(value).__name__}")


def encode(value: Value, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode ``value`` in the canonical profile."""
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    data: bytes = msgpack.packb(
        _canonicalize(value, 1, limits), use_bin_type=True, strict_types=False
    )
    if len(data) > limits.max_object_bytes:
        raise LocalProtocolError(
            "codec.too_large", f"{len(data)} bytes > {limits.max_object_bytes}"
        )
    return data


# ---------------------------------------------------------------------------- decode


def _in_profile(value: Value, depth: int, max_depth: int) -> bool:
    """Whether a value the C parser read is in the profile in what re-packing it cannot
    show: map keys are text in strictly ascending UTF-8 byte order, no floats, no ext
    types, depth within bounds. (Packing it again with its maps in wire order shows the
    rest: smallest formats, bin vs str, no duplicate keys — a duplicate leaves one pair
    fewer —, no trailing bytes.) Keys are compared as str: for text decoded as strict
    UTF-8 (no surrogates), code point order is UTF-8 byte order."""
    if depth > max_depth:
        return False
    t = type(value)
    if t is dict:
        if value and depth >= max_depth:
            return False  # its items would lie deeper than allowed
        previous = None
        for k in value:
            if type(k) is not str or (previous is not None and k <= previous):
                return False
            previous = k
        items = value.values()
    elif t is list:
        if value and depth >= max_depth:
            return False
        items = value
    else:
        return t not in _NOT_IN_PROFILE
    for v in items:
        tv = type(v)
        if tv in _NOT_IN_PROFILE or (
            (tv is dict or tv is list) and not _in_profile(v, depth + 1, max_depth)
        ):
            return False
    return True


_NOT_IN_PROFILE: Final = (float, msgpack.ExtType)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode canonical bytes; raise ``RemoteProtocolError`` naming the broken rule."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) > limits.max_object_bytes:
        raise RemoteProtocolError(
            "codec.too_large", f"{len(data)} bytes > {limits.max_object_bytes}"
        )
    # Fast path, all in C but one walk: parse, pack again with the maps in the order
    # read, compare; the walk checks key order and types (see _in_profile). Accepts
    # exactly what re-encoding canonically accepts; anything else goes to the strict
    # reader, which names the rule broken.
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
        if (
            msgpack.packb(value, use_bin_type=True) == data
            and _in_profile(value, 1, limits.max_depth)
        ):
            return value
    except Exception:  # noqa: BLE001 - any failure here is classified by the strict reader
        pass
    # Slow path: find and name the first broken rule.
    reader = _StrictReader(data, limits)
    value = reader.read_value(1)
    if reader.pos != len(data):
        raise RemoteProtocolError("codec.trailing_bytes", f"{len(data) - reader.pos} extra bytes")
    # The strict reader enforces every rule, so what it accepts is canonical; re-encoding
    # confirms it, and any disagreement is refused rather than guessed at.
    if encode(value, limits) != data:
        raise RemoteProtocolError("codec.bad_type", "value not representable in the profile")
    return value


class _StrictReader:
    """Byte-by-byte reader enforcing every rule of the profile."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.pos = 0
        self.limits = limits

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise RemoteProtocolError("codec.truncated", f"need {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _uint(self, n: int) -> int:
        return int.from_bytes(self._take(n), "big")

    def _length(self, size: int, minimum: int) -> int:
        n = self._uint(size)
        if n < minimum:
            raise RemoteProtocolError("codec.non_minimal", f"length {n} in a wider format")
        return n

    def read_value(self, depth: int) -> Value:
        if depth > self.limits.max_depth:
            raise RemoteProtocolError("codec.too_deep", f"depth exceeds {self.limits.max_depth}")
        start = self.pos
        b = self._take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0xA0 <= b <= 0xBF:
            return self._str(b & 0x1F)
        if 0x90 <= b <= 0x9F:
            return self._array(b & 0x0F, depth)
        if 0x80 <= b <= 0x8F:
            return self._map(b & 0x0F, depth)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b in (0xCA, 0xCB):
            raise RemoteProtocolError("codec.float", f"float at offset {start}")
        if b in (0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
            raise RemoteProtocolError("codec.ext", f"ext type at offset {start}")
        if b == 0xC1:
            raise RemoteProtocolError("codec.bad_type", f"reserved byte at offset {start}")
        if b in (0xC4, 0xC5, 0xC6):
            size = {0xC4: 1, 0xC5: 2, 0xC6: 4}[b]
            n = self._length(size, {1: 0, 2: 0x100, 4: 0x10000}[size])
            return self._take(n)
        if b in (0xD9, 0xDA, 0xDB):
            size = {0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
            n = self._length(size, {1: 32, 2: 0x100, 4: 0x10000}[size])
            return self._str(n)
        if b in (0xDC, 0xDD):
            size = 2 if b == 0xDC else 4
            return self._array(self._length(size, 16 if size == 2 else 0x10000), depth)
        if b in (0xDE, 0xDF):
            size = 2 if b == 0xDE else 4
            return self._map(self._length(size, 16 if size == 2 else 0x10000), depth)
        if b in (0xCC, 0xCD, 0xCE, 0xCF):
            size = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]
            v = self._uint(size)
            floor = {1: 0x80, 2: 0x100, 4: 0x10000, 8: 0x100000000}[size]
            if v < floor:
                raise RemoteProtocolError("codec.non_minimal", f"uint {v} in {size} bytes")
            return v
        # 0xD0..0xD3: signed ints; canonical only for negatives below the fixint range
        size = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[b]
        v = struct.unpack({1: ">b", 2: ">h", 4: ">i", 8: ">q"}[size], self._take(size))[0]
        floor = {1: -32, 2: -128, 4: -32768, 8: -(2**31)}[size]
        if v >= floor:
            raise RemoteProtocolError("codec.non_minimal", f"int {v} in {size} signed bytes")
        return int(v)

    def _str(self, n: int) -> str:
        raw = self._take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError("codec.invalid_utf8", "str is not valid UTF-8") from exc

    def _array(self, n: int, depth: int) -> list[Value]:
        if n > len(self.data) - self.pos:
            raise RemoteProtocolError("codec.truncated", "array longer than the input")
        return [self.read_value(depth + 1) for _ in range(n)]

    def _map(self, n: int, depth: int) -> dict[str, Value]:
        if 2 * n > len(self.data) - self.pos:
            raise RemoteProtocolError("codec.truncated", "map longer than the input")
        out: dict[str, Value] = {}
        previous: bytes | None = None
        for _ in range(n):
            key_at = self.pos
            key = self.read_value(depth + 1)
            if not isinstance(key, str):
                raise RemoteProtocolError("codec.non_text_key", f"map key at offset {key_at}")
            kb = key.encode("utf-8")
            if previous is not None:
                if kb == previous:
                    raise RemoteProtocolError("codec.duplicate_key", f"key {key!r} repeated")
                if kb < previous:
                    raise RemoteProtocolError("codec.unsorted_keys", f"key {key!r} out of order")
            previous = kb
            out[key] = self.read_value(depth + 1)
        return out
