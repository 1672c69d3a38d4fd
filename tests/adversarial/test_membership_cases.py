"""Issue 7, adversarial federation cases 6, 8 and 9: who is in the forum, and a hub that
lies about it. Three real nodes; the lying hub signs with its own node key.
"""

from __future__ import annotations

import copy
import os
import time

import pytest

from cli.member.roster import GhostMemberError, compare_reported
from node.keystore import load_keys
from protocol.codec import decode
from protocol.descriptor import Device, build_attestation
from protocol.keys import AgreementKey, SigningKey, VerifyKey, b64u, unb64u
from protocol.log import EquivocationProof, Event, append_entry, build_event, verify_equivocation
from protocol.rules import fold
from tests.integration.federation_kit import Member, Org, form_forum, same_log, wait_until

from .conftest import Trio
from .kit import code, envelope, no_tracebacks, node_key, now_ms


def _refused(org: Org, metric: str, code_: str, at_least: float) -> bool:
    return org.metric(metric, code=code_) >= at_least


def _push_as_hub(hub: Org, to: Org, forum: str, prev: bytes, seq: int, raw: bytes) -> None:
    """The hub's operator sequences ``raw`` without checking it, and pushes it to ``to``."""
    entry = append_entry(prev, seq, raw, node_key(hub), hub.name, now_ms())
    body = {"forum": forum, "entries": [entry.raw]}
    assert code(to, envelope(hub.name, to, node_key(hub), "forum.entries", body)) is None


def _key_lookup(orgs: list[Org]):  # noqa: ANN202 - a protocol.rules.KeyLookup
    """What a member's client pinned: each node's keys, read here from the data dirs."""
    keys: dict[tuple[str, str], VerifyKey] = {}
    for org in orgs:
        ks = load_keys(org.data / "node.key")
        for vk in (ks.verify_key, *(VerifyKey(r.public) for r in ks.retired)):
            keys[(org.name, vk.key_id)] = vk
    return lambda node, kid, ts: keys.get((node, kid))


def test_case06_removed_members_event_refused_by_hub_and_followers(trio: Trio) -> None:
    (a, b, c), (alice, bob, carol) = trio.orgs, trio.members
    forum = form_forum(alice, [bob, carol])  # a forum of its own: carol leaves this one
    alice.submit(forum.event(alice, "member.remove", {"subject": carol.id}))
    alice.submit(forum.commit(alice, [], [alice, bob]))
    old_epoch, forum.epoch = forum.epoch, forum.epoch + 1
    head = same_log([alice, bob], forum.id, 9)[-1]
    refused_before = a.metric("peerforum_forum_submissions_refused_total",
                              code="rules.removed_member")  # fmt: skip
    stale = forum.post(carol, "after my removal")  # signed in the epoch carol knew
    current = forum.event(carol, "post", stale.body, forum.epoch)
    for ev in (stale, current):
        assert carol.submit(ev)["status"] in ("forwarded", "refused")
    wait_until("the hub refuses carol twice", lambda: _refused(
        a, "peerforum_forum_submissions_refused_total", "rules.removed_member",
        refused_before + 2))  # fmt: skip
    # The hub's operator sequences it anyway: bob's node refuses the entry, keeps its head.
    before = b.metric("peerforum_forum_entries_refused_total", code="rules.removed_member")
    _push_as_hub(a, b, forum.id, head.hash, 10, current.raw)
    wait_until(
        "B refuses the entry",
        lambda: _refused(
            b, "peerforum_forum_entries_refused_total", "rules.removed_member", before + 1
        ),
    )
    assert bob.head(forum.id) == 9 and alice.head(forum.id) == 9
    assert old_epoch != forum.epoch
    no_tracebacks(a, b, c)


def _ghost_device_add(trio: Trio) -> tuple[Event, Device]:
    """B's operator attests a device of its own making for bob, and signs bob's device.add
    with it (it holds no key of bob's)."""
    b, bob, forum = trio.orgs[1], trio.members[1], trio.forum
    ghost_sign, ghost_agree = SigningKey(os.urandom(32)), AgreementKey(os.urandom(32))
    ghost = Device(ghost_sign.verify_key, ghost_agree.public)
    att = build_attestation(node=b.name, member=bob.id, org="bob", devices=[ghost],
                            ts=now_ms(), key=node_key(b))  # fmt: skip
    ev = build_event(forum=forum.id, type="device.add", author=bob.id, device_key=ghost_sign,
                     ts=now_ms(), nonce=os.urandom(16), epoch=forum.epoch,
                     body={"attestation": att.to_wire()})  # fmt: skip
    return ev, ghost


def test_case09_member_or_device_added_without_admission_is_caught(trio: Trio) -> None:
    (a, b, c), (alice, bob, carol), forum = trio.orgs, trio.members, trio.forum
    h0 = same_log([alice, bob, carol], forum.id, alice.head(forum.id))[-1]
    ev, ghost = _ghost_device_add(trio)
    # 1. The hub refuses it from bob's node (the node may speak for bob, not sign for him).
    before = a.metric("peerforum_forum_submissions_refused_total", code="rules.unknown_device")
    body = {"forum": forum.id, "events": [ev.raw]}
    assert code(a, envelope(b.name, a, node_key(b), "forum.submit", body)) is None
    wait_until(
        "the hub refuses the ghost device",
        lambda: _refused(
            a, "peerforum_forum_submissions_refused_total", "rules.unknown_device", before + 1
        ),
    )
    # 2. A hub that sequences it anyway is refused by carol's node.
    before = c.metric("peerforum_forum_entries_refused_total", code="rules.unknown_device")
    _push_as_hub(a, c, forum.id, h0.hash, h0.seq + 1, ev.raw)
    wait_until(
        "C refuses the entry",
        lambda: _refused(
            c, "peerforum_forum_entries_refused_total", "rules.unknown_device", before + 1
        ),
    )
    assert carol.head(forum.id) == h0.seq
    # 3. A node that pads the roster it reports (a ghost device for bob, a ghost member)
    # is caught by the client's own fold of the hub-signed log.
    entries = alice.log(forum.id)
    state = fold(entries, hub_key_at=_key_lookup(trio.orgs), node_keys=_key_lookup(trio.orgs))
    assert state is not None and state.seq == h0.seq
    reported = alice.state(forum.id)
    compare_reported(reported, state)  # the honest report agrees
    padded = copy.deepcopy(reported)
    bob_view = next(m for m in padded["members"] if m["member"] == bob.id)
    bob_view["devices"].append({"kid": ghost.device_id, "sign": b64u(ghost.sign.raw),
                                "agree": b64u(ghost.agree.raw)})  # fmt: skip
    with pytest.raises(GhostMemberError):
        compare_reported(padded, state)
    extra = copy.deepcopy(reported)
    extra["members"].append({**bob_view, "member": f"@ghost:{b.name}"})
    with pytest.raises(GhostMemberError):
        compare_reported(extra, state)
    no_tracebacks(a, b, c)


def test_case08_equivocating_hub_detected_proof_verifies_offline(trio: Trio) -> None:
    (a, b, c), (alice, bob, carol), forum = trio.orgs, trio.members, trio.forum
    alice.submit(forum.post(alice, "honest"))
    log = same_log([alice, bob], forum.id, alice.head(forum.id))
    last = log[-1]
    evil = append_entry(log[-2].hash, last.seq, forum.post(alice, "rewritten").raw,
                        node_key(a), a.name, now_ms())  # fmt: skip
    assert evil.hash != last.hash
    body = {"forum": forum.id, "entries": [evil.raw]}
    assert code(b, envelope(a.name, b, node_key(a), "forum.entries", body)) is None
    status = wait_until("B frozen", lambda: (s := b.cli("status")) and s.get("frozen") and s)
    [frozen] = status["frozen"]
    assert frozen["forum"] == forum.id
    raw_proof = unb64u(frozen["proof"])
    # Offline: only the proof's bytes and the hub key the verifier pinned.
    proof = EquivocationProof.from_wire(decode(raw_proof))
    verify_equivocation(proof, VerifyKey(node_key(a).verify_key.raw))
    assert proof.seq == last.seq and proof.hub == a.name
    with pytest.raises(Exception):  # noqa: B017 - any coded refusal; a key that did not sign
        verify_equivocation(proof, SigningKey(os.urandom(32)).verify_key)
    wait_until("A learns of it too", lambda: a.cli("status").get("frozen"))
    with pytest.raises(Exception, match="forum.frozen"):
        bob.submit(forum.post(bob, "after the freeze"))
    assert isinstance(carol, Member) and time.time() > 0
    no_tracebacks(b, c)
