"""Member CLI on two real nodes: replies, a second device added and removed (each with
its epoch), and an amended pledge that sync shows but only the member signs."""

from __future__ import annotations

from pathlib import Path

from cli.member import MemberClient, actions
from cli.member.sealing import readable
from protocol.keys import b64u

from .conftest import Nodes
from .member_kit import Person, admit, cli_ok, enroll, settle, start_orgs


def test_replies_devices_and_an_amended_pledge(nodes: Nodes, tmp_path: Path) -> None:
    orgs = start_orgs(nodes, 2)
    c = enroll(orgs, [Person("alice", "Acme", "Retail", 0), Person("bob", "Beta", "Banking", 1)],
               tmp_path)  # fmt: skip
    alice, bob = c["alice"], c["bob"]
    forum = alice.create_forum("devices")
    admit(forum, [alice], bob, "n", "r")
    a, b = str(tmp_path / "alice"), str(tmp_path / "bob")

    # -- a reply, by a prefix of the post's id
    first = bob.post(forum, "a question")
    settle(forum, [alice, bob])
    reply = cli_ok("forum", "post", "--text", "an answer", "--reply-to", first[:6],
                   "--profile", a, "--", forum)["event"]  # fmt: skip
    settle(forum, [alice, bob])
    shown = {p["event"]: p for p in bob.view(forum).posts}
    assert shown[reply]["type"] == "reply" and shown[reply]["to"] == first

    # -- a second device for bob: requested on it, added from his first device
    b2 = str(tmp_path / "bob-laptop")
    req = tmp_path / "request.json"
    cli_ok("client", "device", "request", "--node", orgs[1].url, "--member", bob.member,
           "--out", str(req), "--profile", b2)  # fmt: skip
    epoch = alice.verified(forum)[0].epoch
    added = cli_ok("client", "device", "add", str(req), "--profile", b)
    assert added["forums"] == [{"forum": forum, "event": added["forums"][0]["event"],
                                "epoch": epoch + 1}]  # fmt: skip
    settle(forum, [alice, bob])
    laptop = MemberClient(b2)
    alice.post(forum, "for both of bob's devices")
    settle(forum, [alice, bob])
    seen = laptop.read(forum)["entries"]
    assert seen[-1]["body"]["text"] == "for both of bob's devices"
    old = next(e for e in seen if e["event"] == first)
    assert old.get("unreadable") is True  # before the device joined: never

    # -- removed again (from the first device): a new epoch it cannot open
    removed = cli_ok("client", "device", "remove", added["kid"], "--profile", b)
    assert removed["forums"][0]["epoch"] == epoch + 2
    settle(forum, [alice, bob])
    later = alice.post(forum, "not for the laptop")
    settle(forum, [alice, bob])
    _, entries = alice.verified(forum)
    entry = next(e for e in entries if b64u(e.signed_event.event_id) == later)
    assert readable(laptop.profile, entry, laptop.agree_key).get("unreadable") is True
    assert bob.read(forum)["entries"][-1]["body"]["text"] == "not for the laptop"

    # -- an amendment changes the pledge: sync shows it, only accept-pledge signs it
    charter = tmp_path / "amended.toml"
    charter.write_text('pledge = "A new pledge, signed by each of us."\n')
    motion = actions.amend_motion(alice, forum, str(charter), "clearer words")
    settle(forum, [alice, bob])
    for m in (alice, bob):
        actions.vote(m, forum, motion, True)
    settle(forum, [alice, bob])
    assert alice.sync(forum)["amended"] == [motion]
    settle(forum, [alice, bob])
    due = cli_ok("forum", "sync", forum, "--profile", b)
    assert due["pledged"] is False and due["pledge_due"]["pledge"].startswith("A new pledge")
    assert bob.member not in bob.view(forum).pledges
    signed = cli_ok("forum", "accept-pledge", forum, "--profile", b)
    assert signed["event"] and signed["pledge_hash"] == due["pledge_due"]["pledge_hash"]
    settle(forum, [alice, bob])
    assert bob.member in alice.view(forum).pledges
