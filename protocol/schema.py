"""Field checks shared by every message format (specs/protocol.md §3.3).

Formats are maps with an exact set of fields; each field has one type. These helpers
turn a decoded map into typed values or raise the ``schema.*`` code that names the
problem, so every format validates the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from .errors import RemoteProtocolError

T = TypeVar("T")

_TYPE_NAMES = {bytes: "bin", str: "str", int: "int", bool: "bool", list: "array", dict: "map"}


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


def field(obj: dict[str, Any], name: str, typ: type[T], what: str = "object") -> T:
    """Return ``obj[name]`` if it has exactly type ``typ`` (bool is not an int here)."""
    value = obj.get(name)
    ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
    if not ok:
        raise RemoteProtocolError(
            "schema.wrong_type", f"{what}.{name} must be {_TYPE_NAMES.get(typ, typ.__name__)}"
        )
    return value  # type: ignore[return-value]


def fixed_bytes(obj: dict[str, Any], name: str, size: int, what: str = "object") -> bytes:
    value = field(obj, name, bytes, what)
    if len(value) != size:
        raise RemoteProtocolError("schema.bad_value", f"{what}.{name} must be {size} bytes")
    return value


def non_negative(obj: dict[str, Any], name: str, what: str = "object") -> int:
    value = field(obj, name, int, what)
    if value < 0:
        raise RemoteProtocolError("schema.bad_value", f"{what}.{name} must be >= 0")
    return value
