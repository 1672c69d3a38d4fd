"""The charter: the forum's own rules, sealed as a ``charter`` entry (member-enforced).

Nodes never see it (DESIGN §2): thresholds, composition limits and the pledge are
checked by members' clients. A charter is plain data with defaults for every key, so a
forum created without a file still has the rules issue 4 describes; a TOML file
overrides any subset, and a bad key is named in the error. Fractions are text
(``"2/3"``), never floats: the charter travels in canonical msgpack, which has none.
"""

from __future__ import annotations

import copy
import hashlib
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

from protocol.codec import encode

CADENCES = {"weekly": 52, "biweekly": 26, "monthly": 12, "quarterly": 4}
RULE_WORDS = ("unanimous", "majority")
THRESHOLDS = ("admission", "removal", "amendment", "hub_move", "waiver")

DEFAULT: dict[str, Any] = {
    "purpose": "A confidential peer forum of executives from different organizations who "
               "help each other decide better and hold each other accountable.",
    "values": ["confidentiality", "candour", "experience, not advice", "commitment"],
    "ground_rules": [
        "What is said in the forum stays in the forum.",
        "Share experience, not advice.",
        "Come prepared; phones away.",
        "No prices, bids, wages or capacity: nothing a competition authority would frown at.",
    ],
    "pledge": "I will keep everything shared in this forum confidential, attend and "
              "prepare, share my experience honestly, and keep my commitments.",
    "size": {"min": 6, "max": 12},
    "cadence": {"every": "monthly", "hours": 4, "start_time": "09:00", "timezone": "UTC"},
    "composition": {"max_per_org": 1, "max_per_industry": {}},
    "thresholds": {
        "admission": {"rule": "unanimous", "quorum": "2/3"},
        "removal": {"rule": "2/3"},
        "amendment": {"rule": "2/3"},
        "hub_move": {"rule": "majority"},
        "waiver": {"rule": "unanimous", "quorum": "2/3"},
    },
    "attendance": {"max_misses": 2, "late_weight": "1/2"},
    "updates": {"retention_days": 30},
    "agenda": [
        "Confidentiality reminder",
        "Check-in round",
        "Commitments review",
        "Member updates",
        "Dilemma",
        "Parking lot",
        "New commitments and close",
    ],
}
CONFIDENTIALITY = "Confidentiality reminder"


class CharterError(ValueError):
    """A charter key is missing its meaning: ``key`` names it (``thresholds.removal.rule``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"charter key {key}: {message}")
        self.key = key


def parse_fraction(text: Any, key: str) -> Fraction:
    """``"2/3"`` (or a TOML number) as a fraction in [0, 1]."""
    try:
        value = Fraction(str(text)) if not isinstance(text, bool) else None
    except (ValueError, ZeroDivisionError):
        value = None
    if value is None or not 0 <= value <= 1:
        raise CharterError(key, f"expected a fraction like '2/3', got {text!r}")
    return value


def _check(value: Any, default: Any, key: str) -> Any:
    """``value`` shaped like ``default``: same keys (no unknown ones), same types."""
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise CharterError(key, "expected a table")
        out = copy.deepcopy(default)
        for k, v in value.items():
            sub = f"{key}.{k}" if key else k
            if key == "composition.max_per_industry":
                if type(v) is not int or v < 1:
                    raise CharterError(sub, "expected a whole number >= 1")
                out[k] = v
            elif k not in default:
                raise CharterError(sub, "unknown key (see `peerforum forum create --help`)")
            else:
                out[k] = _check(v, default[k], sub)
        return out
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise CharterError(key, "expected a list of text")
        return list(value)
    if type(default) is int:
        if type(value) is not int or value < 0:
            raise CharterError(key, f"expected a whole number, got {value!r}")
        return value
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = str(Fraction(value).limit_denominator(100))  # TOML 0.5 → "1/2"
    if not isinstance(value, str):
        raise CharterError(key, f"expected text, got {value!r}")
    return value


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, every value checked; the charter as it will be sealed."""
    charter: dict[str, Any] = _check(data, DEFAULT, "")
    size = charter["size"]
    if not 2 <= size["min"] <= size["max"]:
        raise CharterError("size", "need 2 <= min <= max")
    cadence = charter["cadence"]
    if cadence["every"] not in CADENCES:
        raise CharterError("cadence.every", f"one of {', '.join(CADENCES)}")
    if not 1 <= cadence["hours"] <= 24:
        raise CharterError("cadence.hours", "between 1 and 24")
    hh, _, mm = cadence["start_time"].partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise CharterError("cadence.start_time", "HH:MM, e.g. 09:00")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(cadence["timezone"])
    except Exception as exc:
        zone = cadence["timezone"]
        raise CharterError("cadence.timezone", f"unknown time zone {zone!r}") from exc
    if charter["composition"]["max_per_org"] < 1:
        raise CharterError("composition.max_per_org", "at least 1")
    for name in THRESHOLDS:
        rule = charter["thresholds"][name]
        if rule["rule"] not in RULE_WORDS:
            parse_fraction(rule["rule"], f"thresholds.{name}.rule")
        if "quorum" in rule:
            parse_fraction(rule["quorum"], f"thresholds.{name}.quorum")
    parse_fraction(charter["attendance"]["late_weight"], "attendance.late_weight")
    if not charter["pledge"].strip():
        raise CharterError("pledge", "a forum needs a pledge its members sign")
    return charter


def load_charter(path: Path | str) -> dict[str, Any]:
    """A TOML charter file, validated; errors name the file and the key."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise CharterError("(file)", f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CharterError("(file)", f"{path} is not TOML: {exc}") from exc
    return validate(data)


def default_charter() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT)


def pledge_hash(charter: dict[str, Any]) -> bytes:
    """What a pledge signature covers: the pledge text, exactly."""
    return hashlib.sha256(b"PFP/1 pledge\x00" + encode(charter["pledge"])).digest()


def retention_ms(charter: dict[str, Any]) -> int:
    return int(charter["updates"]["retention_days"]) * 86_400_000
