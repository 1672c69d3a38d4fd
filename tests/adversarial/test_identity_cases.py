"""Issue 7, adversarial federation cases 1-5 and 12: who may speak for whom, and in which
bytes. Three real nodes; the hostile one signs with its own node key.
"""

from __future__ import annotations

import os
import struct
import urllib.parse

import msgpack

from node.keystore import generate_keys, save_keys
from protocol.codec import decode, encode
from protocol.descriptor import Descriptor
from protocol.log import append_entry
from tests.integration.federation_kit import Forum, Org, same_log, wait_until
from tests.integration.harness import run_cli

from .conftest import Trio
from .kit import code, deliver, envelope, no_tracebacks, node_key, now_ms, post


def test_case01_envelope_speaking_for_another_nodes_author_or_hub(trio: Trio) -> None:
    """A signs envelopes carrying B's member's event and entries claiming B as hub."""
    (a, b, c), (alice, bob, carol), forum = trio.orgs, trio.members, trio.forum
    log = alice.log(forum.id)
    h0 = len(log)
    ka = node_key(a)
    bobs = forum.post(bob, "bob's words, sent by A")
    submit = {"forum": forum.id, "events": [bobs.raw]}
    assert code(a, envelope(c.name, a, node_key(c), "forum.submit", submit)) == (
        "envelope.origin_mismatch")  # C relaying B's member to the hub A  # fmt: skip
    assert code(c, envelope(a.name, c, ka, "forum.submit", submit)) == "envelope.origin_mismatch"
    # Entries claiming hub B but sent by A (and signed by B's name with A's key).
    forged = append_entry(log[-1].hash, h0 + 1, forum.post(alice, "x").raw, ka, b.name, now_ms())
    body = {"forum": forum.id, "entries": [forged.raw]}
    assert code(c, envelope(a.name, c, ka, "forum.entries", body)) == "envelope.origin_mismatch"
    invite = {"forum": forum.id, "entry": forged.raw}
    assert code(c, envelope(a.name, c, ka, "forum.invite", invite)) == "envelope.origin_mismatch"
    assert carol.head(forum.id) == h0 and bobs.event_id not in {
        e.signed_event.event_id for e in alice.log(forum.id)}  # fmt: skip
    no_tracebacks(a, b, c)


def test_case02_path_names_another_forum_and_descriptor_names_another_host(trio: Trio) -> None:
    (a, b, c), alice, forum = trio.orgs, trio.members[0], trio.forum
    h0 = alice.head(forum.id)
    other = Forum(alice).id  # a forum id of the same hub that is not this one
    body = {"forum": forum.id, "from": 1, "limit": 10}
    env = envelope(b.name, a, node_key(b), "forum.backfill", body)
    path = f"/_pf/v1/forums/{urllib.parse.quote(other, safe='')}/backfill"
    status, answer = post(a, path, env)
    assert (status, answer["error"]) == (403, "envelope.origin_mismatch")
    good = f"/_pf/v1/forums/{urllib.parse.quote(forum.id, safe='')}/backfill"
    status, answer = post(a, good, envelope(b.name, a, node_key(b), "forum.backfill", body))
    assert status == 200 and len(answer["entries"]) == min(h0, 10)
    # A descriptor fetched from "localhost:PORT" names 127.0.0.1:PORT: refused, not pinned.
    result = run_cli("peer", "add", f"http://localhost:{c.port}", "--yes", "--json",
                     "--data", str(a.data))  # fmt: skip
    assert result.returncode != 0 and "descriptor.name_mismatch" in result.stdout + result.stderr
    assert all(p["name"] != f"localhost:{c.port}" for p in a.cli("peer", "list")["peers"])
    no_tracebacks(a, b, c)


def _pack(pairs: list[tuple[str, object]]) -> bytes:
    """A map in exactly the given key order (msgpack keeps dict order, minimal formats)."""
    return msgpack.packb(dict(pairs), use_bin_type=True)


def test_case03_non_canonical_encodings_are_refused(trio: Trio) -> None:
    a, b, c = trio.orgs
    kb = node_key(b)
    good = envelope(b.name, a, kb)
    fields = list(decode(good).items())  # canonical order
    one = b"\xa1v\x01"
    assert good.endswith(one)  # "v" sorts last
    variants = {
        "codec.unsorted_keys": _pack(fields[::-1]),
        "codec.non_minimal": good[:-1] + b"\xcc\x01",  # v: 1 as uint8
        "codec.float": good[:-1] + b"\xcb" + struct.pack(">d", 1.0),
        "codec.duplicate_key": bytes([good[0] + 1]) + good[1:] + one,
        "codec.trailing_bytes": good + b"\x00",
        "schema.wrong_type": _pack([(k, v.hex() if k == "id" else v) for k, v in fields]),
    }
    for expected, data in variants.items():
        assert code(a, data) == expected, expected
    # The same rules one level down: an event inside forum.submit with a non-minimal int.
    assert code(a, good) is None
    status, answer = post(a, "/_pf/v1/inbox", _pack([("v", 1), ("envelopes", [good])]))
    assert (status, answer["error"]) == (400, "codec.unsorted_keys")
    status, answer = post(a, "/_pf/v1/inbox", encode({"envelopes": [good], "v": 1}) + b"\xc0")
    assert (status, answer["error"]) == (400, "codec.trailing_bytes")
    no_tracebacks(a, b, c)


def test_case04_replayed_batch_applied_once_stale_one_refused(trio: Trio) -> None:
    (a, b, c), (alice, bob, carol), forum = trio.orgs, trio.members, trio.forum
    h0 = same_log([alice, bob, carol], forum.id, alice.head(forum.id))[-1].seq
    kb = node_key(b)
    ev = forum.post(bob, "once")
    body = {"forum": forum.id, "events": [ev.raw]}
    env = envelope(b.name, a, kb, "forum.submit", body)
    assert [r.get("error") for r in deliver(a, env)] == [None]
    assert [r.get("error") for r in deliver(a, env)] == ["envelope.replay"]  # the same batch
    # A fresh envelope around the same event is accepted and deduped by event id.
    assert code(a, envelope(b.name, a, kb, "forum.submit", body)) is None
    log = same_log([alice, bob, carol], forum.id, h0 + 1)
    assert [e.signed_event.event_id for e in log].count(ev.event_id) == 1
    late = forum.post(bob, "stale")
    for skew in (-301_000, 301_000):
        stale = envelope(b.name, a, kb, "forum.submit", {"forum": forum.id, "events": [late.raw]},
                         ts=now_ms() + skew)  # fmt: skip
        assert code(a, stale) == "envelope.skew"
    assert a.metric("peerforum_federation_replay_hits_total") >= 1
    assert alice.head(forum.id) == h0 + 1
    no_tracebacks(a, b, c)


def test_case05_signed_after_key_expiry_refused_before_accepted(trio: Trio) -> None:
    a, b, c = trio.orgs
    old = node_key(a)
    rotated = a.cli("key", "rotate")
    status, raw = a.proc.get("/.well-known/peerforum") if a.proc else (0, b"")
    desc = Descriptor.from_wire(decode(raw))
    [retired] = [o for o in desc.keys.old if o.key.key_id == old.key_id]
    wait_until("B pins A's rotation", lambda: any(
        p["name"] == a.name and rotated["fingerprint"] in p["fingerprints"]
        for p in b.cli("peer", "list")["peers"]))  # fmt: skip
    before = envelope(a.name, b, old, ts=retired.expired - 1)
    at = envelope(a.name, b, old, ts=retired.expired)
    assert code(b, before) is None  # signed while the key was current
    assert code(b, at) == "sig.key_expired"
    assert code(b, envelope(a.name, b, old)) == "sig.key_expired"
    assert code(b, envelope(a.name, b, node_key(a))) is None
    no_tracebacks(a, b, c)


def test_case12_key_changed_without_rotation_cut_off_until_reapproved(trio: Trio) -> None:
    a, b, c = trio.orgs
    old = node_key(c)
    c.stop()
    save_keys(c.data / "node.key", generate_keys(os.urandom, now_ms()))
    c.start()
    new = node_key(c)

    def status_at_a() -> str:
        return next(p["status"] for p in a.cli("peer", "list")["peers"] if p["name"] == c.name)

    # Our first envelope under the new key makes A refetch C's descriptor and see the swap.
    first = code(a, envelope(c.name, a, new))
    assert first in ("sig.unknown_key", "envelope.key_changed")
    wait_until(
        "A marks C key_changed",
        lambda: (
            status_at_a() == "key_changed"
            or code(a, envelope(c.name, a, new))
            and status_at_a() == "key_changed"
        ),
    )
    for key in (new, old):  # cut off whatever key it signs with
        assert code(a, envelope(c.name, a, key)) == "envelope.key_changed"
    assert a.cli("peer", "approve", c.name)["peer"]["status"] == "approved"
    assert code(a, envelope(c.name, a, new)) is None
    assert code(a, envelope(c.name, a, old)) in ("sig.unknown_key", "sig.key_expired")
    no_tracebacks(a, b)
    assert isinstance(c, Org)
