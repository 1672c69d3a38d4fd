"""Field checks shared by every message format (specs/protocol.md §3.3).

Formats are maps with an exact set of fields; each field has one type. These helpers
turn a decoded map into typed values or raise the ``schema.*`` code that names the
problem, so every format validates the same way. Each check exists once, here.

Value checks (``typed``, ``uint``, ``text``, ``bin_of``, ``kid``, ``sig``) take the value
and ``what``, the name used in the error (``"descriptor.kid"``); the field forms
(``field``, ``non_negative``, ``fixed_bytes``) take a map and a field name and report
``what.name``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from .codec import DEFAULT_LIMITS, Limits, decode
from .errors import LocalProtocolError, RemoteProtocolError

T = TypeVar("T")

VERSION: Final = 1  # the ``v`` of every PFP/1 format
MAX_TEXT: Final = 128  # default bound of a text field (org, title, names of things)
MAX_LIST: Final = 16  # default bound of a list field (keys, devices, versions, ...)
SIG_BYTES: Final = 64
_KID = re.compile(r"k[0-9a-f]{16}")  # key_id(pub), specs §3.2
_TYPE_NAMES = {bytes: "bin", str: "str", int: "int", bool: "bool", list: "array", dict: "map"}


def bad_value(what: str, why: str) -> RemoteProtocolError:
    """``schema.bad_value``: the type is right, the value is out of its range or form."""
    return RemoteProtocolError("schema.bad_value", f"{what} {why}")


def check_fields(
    obj: Any, required: Iterable[str], optional: Iterable[str] = (), what: str = "object"
) -> dict[str, Any]:
    """Require a map holding every ``required`` field and nothing beyond ``optional``."""
    if not isinstance(obj, dict):
        raise RemoteProtocolError("schema.wrong_type", f"{what} must be a map")
    req = set(required)
    missing = req - obj.keys()
    if missing:
        raise RemoteProtocolError("schema.missing_field", f"{what}: missing {sorted(missing)}")
    extra = obj.keys() - req - set(optional)
    if extra:
        raise RemoteProtocolError("schema.unknown_field", f"{what}: unknown {sorted(extra)}")
    return obj


def check_version(obj: dict[str, Any], what: str) -> None:
    """``obj.v`` is the protocol version 1, else ``schema.unsupported_version``."""
    if field(obj, "v", int, what) != VERSION:
        raise RemoteProtocolError("schema.unsupported_version", f"{what}.v must be {VERSION}")


# ---------------------------------------------------------------------------- values


def typed(value: object, typ: type[T], what: str) -> T:
    """Return ``value`` if it has exactly type ``typ`` (bool is not an int here)."""
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        name = _TYPE_NAMES.get(typ, typ.__name__)
        raise RemoteProtocolError("schema.wrong_type", f"{what} must be {name}")
    return value


def uint(value: object, what: str) -> int:
    """An int >= 0 (times, counters)."""
    if (checked := typed(value, int, what)) < 0:
        raise bad_value(what, "must be >= 0")
    return checked


def text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    """A str of 1..``limit`` characters."""
    if not 1 <= len(checked := typed(value, str, what)) <= limit:
        raise bad_value(what, f"must be 1..{limit} characters")
    return checked


def bin_of(value: object, size: int, what: str) -> bytes:
    """A bin of exactly ``size`` bytes."""
    if len(checked := typed(value, bytes, what)) != size:
        raise bad_value(what, f"must be {size} bytes")
    return checked


def kid(value: object, what: str) -> str:
    """A key id: ``"k"`` and 16 lower-case hex digits, the whole str."""
    if not _KID.fullmatch(checked := typed(value, str, what)):
        raise bad_value(what, "is not a key id")
    return checked


def sig(value: object, what: str) -> bytes:
    """A signature of the wrong length cannot verify: ``sig.invalid``, as §3.3 says."""
    if len(checked := typed(value, bytes, what)) != SIG_BYTES:
        raise RemoteProtocolError("sig.invalid", f"{what} must be {SIG_BYTES} bytes")
    return checked


# ---------------------------------------------------------------------------- fields of a map


def field(obj: dict[str, Any], name: str, typ: type[T], what: str = "object") -> T:
    """Return ``obj[name]`` if it has exactly type ``typ`` (bool is not an int here)."""
    return typed(obj.get(name), typ, f"{what}.{name}")


def non_negative(obj: dict[str, Any], name: str, what: str = "object") -> int:
    return uint(obj.get(name), f"{what}.{name}")


def fixed_bytes(obj: dict[str, Any], name: str, size: int, what: str = "object") -> bytes:
    return bin_of(obj.get(name), size, f"{what}.{name}")


def bounded_list(
    obj: dict[str, Any], name: str, what: str, *, limit: int = MAX_LIST, empty: bool = False
) -> list[Any]:
    """``obj[name]`` as an array of 1..``limit`` items (0..``limit`` when ``empty``)."""
    items = field(obj, name, list, what)
    if len(items) > limit or (not empty and not items):
        raise bad_value(f"{what}.{name}", f"must hold {0 if empty else 1}..{limit} items")
    return items


# ---------------------------------------------------------------------------- whole objects


def decode_map(
    data: bytes, what: str = "object", limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """Strictly decode canonical bytes that must hold a map (nothing else is accepted)."""
    if not isinstance(data, bytes):
        raise RemoteProtocolError("schema.wrong_type", f"{what} must be bin")
    value = decode(data, limits)
    if not isinstance(value, dict):
        raise RemoteProtocolError("schema.wrong_type", f"{what} must be a map")
    return value


def load_map(
    data: bytes | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS, what: str = "object"
) -> dict[str, Any]:
    """Canonical bytes are decoded; an already-decoded map is taken as is (copied)."""
    if isinstance(data, bytes):
        return decode_map(data, what, limits)
    if not isinstance(data, Mapping):
        raise RemoteProtocolError("schema.wrong_type", f"{what} must be a map")
    return dict(data)


@contextmanager
def built_locally() -> Iterator[None]:
    """When *we* build a message, a validation failure is our error, not a peer's."""
    try:
        yield
    except RemoteProtocolError as exc:
        raise LocalProtocolError(exc.code, exc.message) from exc
