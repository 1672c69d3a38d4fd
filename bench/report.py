"""The benchmark's output: a table for people, then ONE JSON line for machines (last line).

A figure that could not be measured is ``null`` in the JSON and its reason is under
``reasons`` — never a made-up number.
"""

from __future__ import annotations

import json
from typing import Any

KEYS = (
    "sequencing_eps", "sequencing_single_eps", "replication_eps", "latency_p50_ms",
    "latency_p99_ms", "latency_floor_p50_ms", "latency_floor_p99_ms", "catchup_eps",
    "fanout_eps", "rss_idle_mib", "rss_forums_mib", "verify_per_core", "sign_per_core",
    "insert_batch_per_core", "sequencing_limit_eps",
)  # fmt: skip

# (figure, target as text, test) from issue 8, on the 2-core development machine.
TARGETS: dict[str, tuple[str, Any]] = {
    "sequencing_eps": (">= 2000 and >= 0.4 x limit", None),
    "sequencing_single_eps": ("(no target: 1 event/request)", None),
    "replication_eps": (">= 1000", lambda v, r: v >= 1000),
    "latency_p50_ms": ("<= 5", lambda v, r: v <= 5),
    "latency_p99_ms": ("<= 25", lambda v, r: v <= 25),
    "latency_floor_p50_ms": ("(no target: same path, no work)", None),
    "latency_floor_p99_ms": ("(no target: same path, no work)", None),
    "catchup_eps": (">= 3000", lambda v, r: v >= 3000),
    "fanout_eps": ("linear cost per follower", None),
    "rss_idle_mib": ("<= 60", lambda v, r: v <= 60),
    "rss_forums_mib": ("<= 150", lambda v, r: v <= 150),
}
LIMIT_FORMULA = "1 / (1/verify_per_core + 1/sign_per_core + 1/insert_batch_per_core)"


def _sequencing_ok(r: dict[str, Any]) -> bool | None:
    v, limit = r.get("sequencing_eps"), r.get("sequencing_limit_eps")
    if v is None or limit is None:
        return None
    return bool(v >= 2000 and v >= 0.4 * limit)


def _fanout_ok(r: dict[str, Any]) -> bool | None:
    """Cost per entry (followers / rate) must grow no faster than the follower count."""
    f = r.get("fanout_eps") or {}
    if any(f.get(k) is None for k in ("2", "10")):
        return None
    # cost(n) ~ n / rate(n); linear means rate(10) >= rate(2) * 2/10 (with 10% slack).
    return bool(f["10"] >= 0.9 * f["2"] * 2 / 10)


def verdict(name: str, results: dict[str, Any]) -> str:
    if name == "sequencing_eps":
        ok = _sequencing_ok(results)
    elif name == "fanout_eps":
        ok = _fanout_ok(results)
    else:
        test = TARGETS[name][1]
        v = results.get(name)
        ok = None if v is None or test is None else bool(test(v, results))
    return {True: "ok", False: "MISS", None: "-"}[ok]


def _fmt(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, dict):
        return " ".join(f"{k}:{_fmt(x)}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    return str(v)


def table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':<24}{'value':>28}  {'target':<28}{'':>5}", "-" * 88]
    for key in KEYS:
        target = TARGETS.get(key, ("", None))[0]
        mark = verdict(key, results) if key in TARGETS else ""
        lines.append(f"{key:<24}{_fmt(results.get(key)):>28}  {target:<28}{mark:>5}")
    for key, why in sorted(results.get("reasons", {}).items()):
        lines.append(f"  {key} is null: {why}")
    lines.append(f"sequencing_limit_eps = {LIMIT_FORMULA}")
    return "\n".join(lines)


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 2)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    return v


def json_line(results: dict[str, Any]) -> str:
    out = {k: _rounded(results.get(k)) for k in KEYS}
    out["sequencing_limit_formula"] = LIMIT_FORMULA
    for extra in ("reasons", "params", "details"):
        out[extra] = _rounded(results.get(extra, {}))
    return json.dumps(out, sort_keys=False)
