"""Detached sealed content (protocol §6.9): the rule table's two content shapes, the
attachment check a hub runs, and opening an attachment — all against rules.json."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.codec import decode
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.group import (
    SealedContent,
    attached_content,
    attachment_ref,
    check_attachment,
    detach_content,
    open_content,
)
from protocol.keys import VerifyKey
from protocol.log import Entry, Event
from protocol.rules import RULES, ForumState, apply_entry, check_event, fold
from tests.vectors import load

VEC = load("rules.json")
DET = VEC["detached"]
NODES = {n: VerifyKey(bytes.fromhex(v["key"])) for n, v in VEC["nodes"].items()}
HISTORY = [Entry.from_bytes(bytes.fromhex(h)) for h in VEC["history"]["entries"]]


def lookup(node: str, kid: str, ts: int) -> VerifyKey | None:
    key = NODES.get(node)
    return key if key is not None and key.key_id == kid else None


def folded() -> ForumState:
    state = fold(HISTORY[: DET["prefix"]], hub_key_at=lookup, node_keys=lookup)
    assert state is not None
    return state


def test_a_detached_update_applies_and_its_attachment_opens() -> None:
    state = folded()
    entry = Entry.from_bytes(bytes.fromhex(DET["valid"]["entry"]))
    after = apply_entry(state, entry, hub_key_at=lookup, node_keys=lookup)
    assert after.seq == state.seq + 1 and after.members is state.members
    ev = entry.signed_event
    attachment = bytes.fromhex(DET["valid"]["attachment"])
    assert set(ev.body) == {"ct_ref", "expires"}
    assert ev.body["ct_ref"] == attachment_ref(attachment) == bytes.fromhex(DET["valid"]["ct_ref"])
    assert ev.body["expires"] == DET["valid"]["expires"]
    check_attachment(ev.body, attachment)
    sealed = attached_content(ev.body, attachment)
    secret = bytes.fromhex(DET["valid"]["epoch_secret"])
    # The AAD is the event's cleartext header, exactly as for inline content (§8.6).
    plain = open_content(secret, header=ev.header(), sealed=sealed)
    assert plain == bytes.fromhex(DET["valid"]["plaintext"])


def test_the_chain_verifies_without_the_attachment() -> None:
    """What a node backfilling after expiry holds: entries only. Nothing in the fold
    needs the ciphertext, so the chain and every signature still verify."""
    entry = Entry.from_bytes(bytes.fromhex(DET["valid"]["entry"]))
    state = fold([*HISTORY, entry], hub_key_at=lookup, node_keys=lookup)
    assert state is not None and state.head == entry.hash


@pytest.mark.parametrize("case", DET["invalid"], ids=lambda c: c["desc"])
def test_refused_body_shapes(case: dict[str, Any]) -> None:
    state = folded()
    entry = Entry.from_bytes(bytes.fromhex(case["entry"]))
    with pytest.raises(RemoteProtocolError) as exc:
        apply_entry(state, entry, hub_key_at=lookup, node_keys=lookup)
    assert exc.value.code == case["error"] == "rules.bad_body"
    with pytest.raises(RemoteProtocolError) as exc:
        check_event(state, entry.signed_event, node_keys=lookup)
    assert exc.value.code == "rules.bad_body"


@pytest.mark.parametrize("case", DET["attachments"], ids=lambda c: c["desc"])
def test_refused_attachments(case: dict[str, Any]) -> None:
    ev = Event.from_bytes(bytes.fromhex(case["event"]))
    att = None if case["attachment"] is None else bytes.fromhex(case["attachment"])
    with pytest.raises(RemoteProtocolError) as exc:
        check_attachment(ev.body, att)
    assert exc.value.code == case["error"]


def test_the_rule_table_holds_both_shapes() -> None:
    rule = RULES["update"]
    assert rule.required == ("ct",) and rule.alternatives == ((("ct_ref", "expires"), ()),)
    assert all(RULES[t] is rule for t in ("post", "dilemma", "notice"))


def test_detach_round_trip_and_local_errors() -> None:
    sealed = SealedContent(suite=1, nonce=bytes(12), ct=bytes(20))
    body, attachment = detach_content(sealed, expires=5)
    assert body == {"ct_ref": attachment_ref(attachment), "expires": 5}
    assert SealedContent.from_wire(decode(attachment)) == sealed
    assert attached_content(body, attachment) == sealed
    check_attachment({"ct": sealed.to_wire()}, None)  # inline: nothing beside it
    with pytest.raises(LocalProtocolError):
        detach_content(sealed, expires=-1)
    with pytest.raises(LocalProtocolError) as exc:
        detach_content(SealedContent(suite=1, nonce=bytes(12), ct=bytes(70_000)), expires=1)
    assert exc.value.code == "event.too_large"


def test_envelopes_carry_attachments_beside_entries() -> None:
    from protocol.codec import DEFAULT_LIMITS
    from protocol.envelope import ORIGIN_RULES

    entries_rule = ORIGIN_RULES["forum.entries"]
    assert entries_rule is not None
    body: dict[str, Any] = {"forum": VEC["forum"], "entries": [HISTORY[0].raw]}
    entries_rule(body, "acme.example", DEFAULT_LIMITS)  # none: the field is absent
    entries_rule({**body, "attachments": [b"x"]}, "acme.example", DEFAULT_LIMITS)
    for bad, code in (([], "schema.bad_value"), (["x"], "schema.wrong_type"),
                      ([bytes(65_537)], "event.too_large")):  # fmt: skip
        with pytest.raises(RemoteProtocolError) as exc:
            entries_rule({**body, "attachments": bad}, "acme.example", DEFAULT_LIMITS)
        assert exc.value.code == code
