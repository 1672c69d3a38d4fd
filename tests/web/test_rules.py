"""The browser's port of the forum rules (node/web/js/rules.js) against specs/vectors/rules.json.

The same vectors drive protocol/rules.py in tests/unit/test_rules.py, so the browser and
the node fold a forum to the same state and refuse the same entries with the same codes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.vectors import cases, load

from .conftest import Harness

VEC = load("rules.json")


def test_history_folds_to_the_vector_state(harness: Harness) -> None:
    state = harness.ok("rulesFold", {"nodes": VEC["nodes"], "entries": VEC["history"]["entries"]})
    want = VEC["history"]["state"]
    assert unbin(state) == want


@pytest.mark.parametrize("case", cases("rules.json", "invalid"), ids=lambda c: c["desc"])
def test_invalid_case(harness: Harness, case: dict[str, Any]) -> None:
    prefix = VEC["history"]["entries"][: case["prefix"]]
    got = harness.ok(
        "rulesFold", {"nodes": VEC["nodes"], "entries": prefix, "extra": case["extra"]}
    )
    assert got == {"code": case["error"], "unchanged": True}


def unbin(value: Any) -> Any:
    """The harness tags bytes as {"$bin": hex}; the vector writes plain hex."""
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return value["$bin"]
        return {k: unbin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unbin(v) for v in value]
    return value


DETACHED = VEC["detached"]


def test_detached_update_folds(harness: Harness) -> None:
    entries = [*VEC["history"]["entries"][: DETACHED["prefix"]], DETACHED["valid"]["entry"]]
    state = unbin(harness.ok("rulesFold", {"nodes": VEC["nodes"], "entries": entries}))
    assert state["seq"] == DETACHED["prefix"] + 1


@pytest.mark.parametrize("case", DETACHED["invalid"], ids=lambda c: c["desc"])
def test_detached_invalid_case(harness: Harness, case: dict[str, Any]) -> None:
    prefix = VEC["history"]["entries"][: DETACHED["prefix"]]
    got = harness.ok(
        "rulesFold", {"nodes": VEC["nodes"], "entries": prefix, "extra": [case["entry"]]}
    )
    assert got == {"code": case["error"], "unchanged": True}
