"""Issue 3's federation tests, part 2: hostile input, a lying hub, a dead hub, key changes.

Real node processes on 127.0.0.1. Where a test plays a misbehaving node it signs with
that node's own key, read from its data dir (``node.key``): exactly what a compromised
operator could do.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

from node.keystore import generate_keys, load_keys, save_keys
from protocol.codec import decode, encode
from protocol.envelope import build_batch, build_envelope
from protocol.keys import SigningKey, VerifyKey, sign_object, unb64u
from protocol.log import EquivocationProof, append_entry, verify_equivocation

from .conftest import Nodes
from .federation_kit import ApiError, Forum, Org, form_forum, same_log, three_orgs, wait_until

MSGPACK = "application/vnd.peerforum+msgpack"


def _key(org: Org) -> SigningKey:
    return load_keys(org.data / "node.key").current


def _now() -> int:
    return time.time_ns() // 1_000_000


def _post(org: Org, path: str, data: bytes) -> tuple[int, Any]:
    req = urllib.request.Request(org.url + path, data=data, method="POST",
                                 headers={"Content-Type": MSGPACK, "Accept": MSGPACK})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, decode(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, decode(exc.read())


def _env(frm: str, to: Org, key: SigningKey, kind: str = "node.ping", body: Any = None) -> bytes:
    return build_envelope(id=os.urandom(16), sender=frm, to=to.name, ts=_now(), kind=kind,
                          body=body or {}, key=key).encode()  # fmt: skip


def _signed_anyway(frm: str, to: Org, key: SigningKey, kind: str, body: Any) -> bytes:
    """An envelope signed as a misbehaving node would: no local checks of the body."""
    unsigned = {"v": 1, "id": os.urandom(16), "from": frm, "to": to.name, "ts": _now(),
                "kind": kind, "body": body, "kid": key.key_id}  # fmt: skip
    return encode(sign_object("envelope", unsigned, key))


def _deliver(to: Org, *envelopes: bytes) -> list[dict[str, Any]]:
    status, answer = _post(to, "/_pf/v1/inbox", build_batch(list(envelopes)))
    assert status == 200, answer
    return list(answer["results"])


def _code(to: Org, envelope: bytes) -> str | None:
    result = _deliver(to, envelope)[0]
    return result.get("error")


def test_bad_envelopes_are_refused_with_their_codes(nodes: Nodes) -> None:
    (a, b, c), (alice, bob, _) = three_orgs(nodes)
    ka, kc = _key(a), _key(c)
    good = _env(a.name, b, ka)
    assert _code(b, good) is None
    assert _code(b, good) == "envelope.replay"
    forged = decode(_env(a.name, b, ka))
    forged["sig"] = bytes(64)
    assert _code(b, encode(forged)) == "sig.invalid"
    assert _code(b, _env(a.name, c, ka)) == "envelope.wrong_recipient"
    stranger = SigningKey(os.urandom(32))
    assert _code(b, _env("127.0.0.1:9", b, stranger)) == "envelope.unknown_peer"
    # Author's node is not the sender: A may not submit events of B's members.
    event = Forum(alice).post(bob, "not yours to send")
    submit = {"forum": event.forum, "events": [event.raw]}
    mismatch = _signed_anyway(a.name, b, ka, "forum.submit", submit)
    assert _code(b, mismatch) == "envelope.origin_mismatch"
    # Non-canonical bytes: a whole batch with unsorted keys, and one envelope inside a batch.
    status, answer = _post(b, "/_pf/v1/inbox", b"\x82\xa1v\x01\xa9envelopes\x90")
    assert (status, answer["error"]) == (400, "codec.unsorted_keys")
    assert _code(b, good[:-1] + b"\x00" + good[-1:])  # trailing byte inside the item
    assert _deliver(b, b"\xcd\x00\x01")[0]["error"] == "codec.non_minimal"
    # Oversized: above the HTTP limit, and a batch above the protocol's 1 MiB.
    status, answer = _post(b, "/_pf/v1/inbox", b"\x00" * (1200 * 1024))
    assert (status, answer["error"]) == (413, "api.too_large")
    status, answer = _post(b, "/_pf/v1/inbox", b"\x00" * (1024 * 1024 + 10))
    assert (status, answer["error"]) == (413, "envelope.too_large")
    # Blocked peer: B's operator blocks C.
    assert b.cli("peer", "block", c.name)["peer"]["status"] == "blocked"
    assert _code(b, _env(c.name, b, kc)) == "envelope.blocked_peer"
    # Key expired: A rotates (B learns it from the statement); A's old key signs no more.
    rotated = a.cli("key", "rotate")
    wait_until("B pins A's new key", lambda: any(
        rotated["fingerprint"] in p["fingerprints"] for p in b.cli("peer", "list")["peers"]
        if p["name"] == a.name))  # fmt: skip
    assert _code(b, _env(a.name, b, ka)) == "sig.key_expired"
    assert _code(b, _env(a.name, b, _key(a))) is None  # the new key works
    assert b.healthy() and b.proc is not None and "Traceback" not in b.proc.log()
    refused = b.metric("peerforum_federation_envelopes_total", result="refused")
    assert refused >= 8


def test_equivocating_hub_is_caught_and_the_forum_frozen(nodes: Nodes) -> None:
    (a, b, c), (alice, bob, carol) = three_orgs(nodes)
    forum = form_forum(alice, [bob, carol])
    for i in range(5):
        alice.submit(forum.post(alice, f"honest {i}"))
    log = same_log([alice, bob, carol], forum.id, 12)
    # The hub's operator signs a second entry for seq 12 with the hub's own key.
    ka = _key(a)
    evil = append_entry(log[10].hash, 12, forum.post(alice, "rewritten").raw, ka, a.name, _now())
    assert evil.hash != log[11].hash
    body = {"forum": forum.id, "entries": [evil.raw]}
    assert _code(b, _env(a.name, b, ka, "forum.entries", body)) is None
    for org in (b, c):  # B built the proof, C got it from B: both freeze
        status = wait_until(f"{org.name} frozen", lambda org=org: (
            s := org.cli("status")) and s.get("frozen") and s)  # fmt: skip
        [frozen] = status["frozen"]
        assert frozen["forum"] == forum.id and frozen["hub"] == a.name
        proof = EquivocationProof.from_wire(decode(unb64u(frozen["proof"])))
        verify_equivocation(proof, VerifyKey(ka.verify_key.raw))  # offline, by anyone
        assert proof.seq == 12
        listed = org.cli("forums", "list")["forums"]
        assert [(f["forum"], f["frozen"]) for f in listed] == [(forum.id, True)]
    evidence = b.cli("forums", "evidence")["evidence"]
    assert evidence == [] or all(e["forum"] == forum.id for e in evidence)
    try:
        carol.submit(forum.post(carol, "after the freeze"))
        raise AssertionError("a frozen forum took a post")
    except ApiError as exc:
        assert exc.code == "forum.frozen"
    assert b.healthy() and c.healthy()


def test_dead_hub_moves_to_b_by_quorum_and_c_follows(nodes: Nodes) -> None:
    (a, b, c), (alice, bob, carol) = three_orgs(nodes)
    forum = form_forum(alice, [bob, carol])
    for m in (alice, bob, carol):
        m.submit(forum.post(m, "before"))
    same_log([alice, bob, carol], forum.id, 10)
    a.stop(signal.SIGKILL)  # for good
    late = forum.post(carol, "sent to a dead hub")
    assert carol.submit(late)["status"] == "forwarded"  # waits in C's outbox
    state = bob.state(forum.id)
    move = forum.move([bob, carol], state, b, bob)  # 2 of 3 members: a strict majority
    assert bob.submit(move)["seq"] == 11
    posted = [late.event_id]
    for i in range(5):
        for m in (bob, carol):
            ev = forum.post(m, f"after {i}")
            m.submit(ev)
            posted.append(ev.event_id)
    head = 11 + len(posted)
    log = same_log([bob, carol], forum.id, head)
    assert log[10].signed_event.type == "hub.move" and log[10].hub == b.name
    assert {e.hub for e in log[11:]} == {b.name}
    assert {e.signed_event.event_id for e in log[11:]} == set(posted)
    assert carol.state(forum.id)["hub"] == b.name


def test_key_rotation_keeps_federation_a_swap_stops_it(nodes: Nodes) -> None:
    (a, b, c), (alice, bob, carol) = three_orgs(nodes)
    forum = form_forum(alice, [bob, carol])
    same_log([alice, bob, carol], forum.id, 7)
    a.cli("key", "rotate")
    for m in (alice, bob, carol):
        m.submit(forum.post(m, "after rotation"))
    same_log([alice, bob, carol], forum.id, 10)
    # C's key is replaced offline, with no rotation statement.
    c.stop()
    save_keys(c.data / "node.key", generate_keys(os.urandom, _now()))
    c.start()
    stuck = forum.post(carol, "from a node with a swapped key")
    assert carol.submit(stuck)["status"] == "forwarded"

    def peer_status(org: Org, name: str) -> str:
        return next(p["status"] for p in org.cli("peer", "list")["peers"] if p["name"] == name)

    wait_until("A sees C's key change", lambda: peer_status(a, c.name) == "key_changed")
    assert a.cli("status")["peers"].get("key_changed") == 1
    time.sleep(1.0)
    assert stuck.event_id not in {e.signed_event.event_id for e in alice.log(forum.id)}
    # A's operator checks the new fingerprint with C's and approves again.
    assert a.cli("peer", "approve", c.name)["peer"]["status"] == "approved"
    log = same_log([alice, carol], forum.id, 11)
    assert log[-1].signed_event.event_id == stuck.event_id
