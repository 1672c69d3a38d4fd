"""Issue 4's forum tests 1, 2, 3 and 5 across four real node processes.

Six executives of six organizations, enrolled on four nodes, form one forum hosted by the
first node: nomination, signed votes, invitation sealed to the candidate, acceptance of
the pledge, admission with a new epoch. A seventh from an organization already present
passes the vote and is still refused by the conflict check. Three meetings follow (RSVPs,
attendance, updates, a dilemma with responses and a rating, commitments and check-ins,
the survey). Then a member on a follower node is removed by vote, one more is admitted,
and a marker written in every kind of content is looked for in every node's files and
backups.

The tests share one federation (module fixture) and run in file order; ``World.formed``
forms the forum on first use, so any one of them also runs alone. The member library
drives most steps (a process per CLI call costs ~1.5 s); the CLI drives a representative
few — the operator's ``member add``, enrollment, create, nominate, vote, sync, invites,
accept, schedule, members.
"""

from __future__ import annotations

import datetime as dt
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cli.member import MemberApiError, MemberClient, actions
from cli.member.sealing import open_epochs, readable
from protocol.keys import b64u
from protocol.rules import CONTENT_TYPES

from .conftest import Nodes
from .federation_kit import Org
from .member_kit import Person, admit, cli_ok, enroll, node_files, settle, start_orgs

MARK = "zq-fed-marker-71c4"
PEOPLE = [
    Person("alice", "Acme", "Manufacturing", 0), Person("gina", "Beta", "Banking", 0),
    Person("bob", "Beta", "Banking", 1), Person("carol", "Coda", "Retail", 1),
    Person("dan", "Delta", "Energy", 2), Person("erin", "Echo", "Health", 2),
    Person("frank", "Foxtrot", "Logistics", 3), Person("hugo", "Hotel", "Media", 3),
]  # fmt: skip
CHARTER = f"""
purpose = "Peers helping peers ({MARK} purpose)"
pledge = "What is said here stays here. {MARK}"
[cadence]
every = "monthly"
hours = 4
"""


@dataclass
class World:
    orgs: list[Org]
    root: Path
    c: dict[str, MemberClient]
    alice_dir: str
    forum: str = ""
    members: list[MemberClient] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def formed(self) -> str:
        if not self.forum:
            form(self)
        return self.forum


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fed")
    nodes = Nodes(root)
    try:
        orgs = start_orgs(nodes, 4)
        code = orgs[0].cli("member", "add", "alice", "--org", "Acme", "--industry",
                           "Manufacturing")["enrollment_code"]  # fmt: skip
        alice_dir = str(root / "alice")
        cli_ok("client", "enroll", "--node", orgs[0].url, "--code", code, "--profile", alice_dir)
        c = {"alice": MemberClient(alice_dir), **enroll(orgs, PEOPLE[1:], root)}
        yield World(orgs, root, c, alice_dir)
    finally:
        for node in nodes.started:
            node.kill()


def form(w: World) -> None:
    """Alice (node 0, through the CLI) creates the forum and admits Bob (node 1, CLI);
    carol, dan, erin and frank (nodes 1-3) are admitted through the library."""
    a, c = w.alice_dir, w.c
    charter = w.root / "charter.toml"
    charter.write_text(CHARTER)
    forum = cli_ok("forum", "create", "--name", f"Circle {MARK}", "--charter", str(charter),
                   "--profile", a)["forum"]  # fmt: skip
    assert forum.endswith(":" + w.orgs[0].name)
    bob = c["bob"]
    motion = cli_ok("forum", "nominate", forum, bob.member, "--note", f"{MARK} note",
                    "--profile", a)["motion"]  # fmt: skip
    # ids are b64u and may begin with "-": after "--" click reads them as arguments
    assert cli_ok("forum", "vote", "--yes", "--reason", f"{MARK} reason", "--profile", a,
                  "--", forum, motion[:8])["status"] == "passed"  # fmt: skip
    assert cli_ok("forum", "sync", forum, "--profile", a)["invited"] == [bob.member]
    invites = settle_invite(bob, forum)
    assert invites[0]["pledge"].endswith(MARK) and invites[0]["name"] == f"Circle {MARK}"
    cli_ok("forum", "accept", forum, "--profile", str(w.root / "bob"))
    alice = c["alice"]
    settle(forum, [alice, bob])
    assert alice.sync(forum)["admitted"] == [bob.member]
    settle(forum, [alice, bob])
    assert bob.sync(forum)["pledged"] is True
    members = [alice, bob]
    for h in ("carol", "dan", "erin", "frank"):
        admit(forum, members, c[h], f"{MARK} note", f"{MARK} vote")
        members.append(c[h])
    w.forum, w.members = forum, members


def settle_invite(cand: MemberClient, forum: str) -> list[dict[str, Any]]:
    from .federation_kit import wait_until

    wait_until(f"{cand.member}'s invitation", cand.invites)
    return cli_ok("forum", "invites", "--profile", str(cand.profile.root))["invites"]


# ---------------------------------------------------------------------------- test 1


def test_six_organizations_on_four_nodes_form_a_forum_and_meet(world: World) -> None:
    w = world
    forum = w.formed()
    c, members = w.c, w.members
    listed = cli_ok("forum", "members", forum, "--profile", w.alice_dir)["members"]
    assert sorted(m["org"] for m in listed) == ["Acme", "Beta", "Coda", "Delta", "Echo",
                                                "Foxtrot"]  # fmt: skip
    assert {m.node for m in members} == {o.name for o in w.orgs}  # all four nodes
    for m in members:  # every member's own fold agrees: same roster, same epoch
        state, _ = m.verified(forum)
        assert sorted(x.id for x in state.active()) == sorted(x.member for x in members)
    assert all(m.member in c["alice"].view(forum).pledges for m in members)
    assert not c["frank"].view(forum).alerts  # the last admitted sees no unexplained change

    # -- a seventh from Beta (on Alice's node): the vote passes, the conflict check refuses
    gina = c["gina"]
    motion = actions.nominate(c["dan"], forum, gina.member, note=f"{MARK} gina")
    settle(forum, members)
    for m in members:
        actions.vote(m, forum, motion, True, f"{MARK} vote")
    settle(forum, members)
    synced = c["carol"].sync(forum)
    assert synced["invited"] == [] and synced["blocked"][0]["subject"] == gina.member
    assert synced["blocked"][0]["conflicts"][0] == {
        "kind": "same_org", "with": c["bob"].member,
        "detail": f"{c['bob'].member} is already in the forum from Beta"}  # fmt: skip
    assert gina.invites() == []

    # -- three meetings across nodes
    start = dt.date.today() - dt.timedelta(days=70)
    sched = cli_ok("forum", "meeting", "schedule", forum, "--start", start.isoformat(),
                   "--profile", w.alice_dir)["meetings"]  # fmt: skip
    held = [m["id"] for m in sched[:3]]
    settle(forum, members)
    alice, bob, carol, dan, erin = (c[h] for h in ("alice", "bob", "carol", "dan", "erin"))
    for mid in held:
        for m in members:
            actions.rsvp(m, forum, mid, "no" if m is erin else "yes")
    settle(forum, members)
    last: dict[str, Any] = {}
    for mid, erins in zip(held, ("late", "absent", "late"), strict=True):
        for m in members:
            got = actions.attend(alice, forum, mid, m.member, erins if m is erin else "present")
            last = got if m is erin else last
    assert last["misses"] == 2.0 and "alert" in last  # late + absent + late
    with pytest.raises(MemberApiError, match="moderator"):  # refused before signing
        actions.attend(dan, forum, held[0], erin.member, "absent")
    for m in members:
        actions.update(m, forum, f"{MARK} update from {m.member}", None)
    d = bob.content(forum, "dilemma", {"issue": f"{MARK} issue", "why": "w", "decision": "d",
                                       "ask": "a"})  # fmt: skip
    settle(forum, members)
    actions.respond(carol, forum, d[:8], f"{MARK} when we faced this")
    actions.respond(dan, forum, d, f"{MARK} same here")
    settle(forum, members)
    actions.rate(bob, forum, d, True)
    commitment = carol.content(forum, "commitment", {"text": f"{MARK} hire", "due": held[1]})
    dan_commit = dan.content(forum, "commitment", {"text": f"{MARK} sell", "due": held[2]})
    settle(forum, members)
    actions.checkin(carol, forum, commitment, "done")
    actions.checkin(alice, forum, dan_commit, "renegotiated", due=sched[3]["id"])
    for i, m in enumerate(members[:5]):
        m.content(forum, "survey", {"round": "r1", "score": 5 + i, "text": f"{MARK} {i}"})
    head = settle(forum, members)

    # -- every member, on every node, folds the same forum
    views = {m.member: m.view(forum) for m in members}
    for m in members:  # what a member cannot open was all sealed before they were in
        since = views[m.member].admitted_seq[m.member]
        shut = [e["seq"] for e in m.read(forum)["entries"] if e.get("unreadable")]
        assert all(seq < since for seq in shut), (m.member, since, shut)
    for v in views.values():
        assert not v.ignored
        assert v.dilemmas[d]["helpful"] is True and len(v.dilemmas[d]["responses"]) == 2
        assert {x["author"] for x in v.updates} == set(views)
        assert v.commitments[commitment]["status"] == "done"
        assert v.commitments[dan_commit]["status"] == "renegotiated"
        assert all(len(v.rsvps[mid]) == 6 for mid in held)
        assert v.attendance == views[alice.member].attendance
    alerts = [a for a in views[alice.member].alerts if a["kind"] == "attendance"]
    assert [a["member"] for a in alerts] == [erin.member]
    record = actions.ical(dan, forum)
    assert record.count(b"BEGIN:VEVENT") == 12
    from cli.member.reports import survey_results

    assert survey_results(views[c["frank"].member], "r1")["shown"] is True
    w.notes["head_after_meetings"] = head


# ---------------------------------------------------------------------------- test 2


def test_removal_by_vote_leaves_a_follower_nodes_member_out(world: World) -> None:
    """Erin (node 2, missed meetings) is removed by vote: a new epoch exists; Erin's
    client holds no secret for it and opens nothing later; node 2, which still serves
    Dan, holds the later post only as ciphertext."""
    w = world
    forum = w.formed()
    c = w.c
    erin, dan, alice = c["erin"], c["dan"], c["alice"]
    voters = [m for m in w.members if m is not erin]
    motion = actions.remove_motion(alice, forum, erin.member, f"{MARK} three misses")
    settle(forum, w.members)
    for m in voters[:4]:  # 4 of 5 eligible: the default 2/3
        actions.vote(m, forum, motion, True, f"{MARK} removal vote")
    settle(forum, w.members)
    before = dan.verified(forum)[0]
    assert before.members[erin.member].status == "active"
    out = dan.sync(forum)  # a member on the same node as Erin carries it out
    assert out["removed"] == [erin.member] and out["committed"] is True
    settle(forum, voters)
    after, entries = alice.verified(forum)
    assert after.epoch == before.epoch + 1 and after.members[erin.member].status == "removed"
    commit = entries[-1].signed_event
    assert commit.type == "epoch.commit"
    assert erin.agree_key.public.key_id not in {s["to"] for s in commit.body["secrets"]}

    secret_text = f"{MARK} after erin left"
    post_id = alice.post(forum, secret_text)
    head = settle(forum, voters)
    _, entries = dan.verified(forum)
    post = next(e for e in entries if b64u(e.signed_event.event_id) == post_id)
    assert post.seq == head
    # Erin's device: no secret for the new epoch, and nothing at or after it opens.
    assert open_epochs(erin.profile, forum, entries, erin.agree_key) == 0
    assert erin.profile.epoch_secret(forum, after.epoch) is None
    later = [readable(erin.profile, e, erin.agree_key) for e in entries
             if e.seq > before.seq and e.signed_event.type in ("post", "pledge")]  # fmt: skip
    assert later and all(e.get("unreadable") for e in later)
    with pytest.raises(MemberApiError) as refused:  # and her node no longer serves her
        erin.read(forum)
    assert refused.value.code == "api.forbidden"
    assert dan.read(forum)["entries"][-1]["body"]["text"] == secret_text
    # Node 2 holds the post — its sealed bytes — but never its text.
    ct = bytes(post.signed_event.body["ct"]["ct"])
    node2 = w.orgs[2]
    stored = b"".join(p.read_bytes() for p in node_files(node2) if ".db" in p.name)
    assert ct[:32] in stored, "node 2 should hold the post's ciphertext"
    for path in node_files(node2):
        assert b"after erin left" not in path.read_bytes(), f"plaintext in {path}"
    w.members = voters


# ---------------------------------------------------------------------------- test 3


def test_a_later_member_reads_nothing_from_before_admission(world: World) -> None:
    """Hugo (node 3) is admitted after all of the above: every content entry sequenced
    before his admission epoch stays unreadable to him; what follows opens."""
    w = world
    forum = w.formed()
    hugo = w.c["hugo"]
    members = [m for m in w.members if m.member != w.c["erin"].member]
    admit(forum, members, hugo, f"{MARK} hugo", f"{MARK} vote")
    state, entries = hugo.verified(forum)
    admitted = next(e for e in entries if e.signed_event.type == "epoch.commit"
                    and hugo.member in e.signed_event.body["admit"])  # fmt: skip
    first_epoch = admitted.signed_event.body["epoch"]
    held = {int(k) for k in hugo.profile._epochs().get(forum, {})}
    assert held and min(held) == first_epoch  # never an earlier secret
    mine = hugo.read(forum)["entries"]
    before = [e for e in mine if e["seq"] < admitted.seq and e["type"] in CONTENT_TYPES]
    assert len(before) > 50 and all(e.get("unreadable") for e in before)
    w.c["bob"].post(forum, f"{MARK} welcome hugo")
    settle(forum, [*members, hugo])
    last = hugo.read(forum)["entries"][-1]
    assert last["body"]["text"] == f"{MARK} welcome hugo"
    w.members = [*members, hugo]


# ---------------------------------------------------------------------------- test 5


def test_marker_is_in_no_node_file_log_or_backup(world: World) -> None:
    """The marker went into posts, updates, a dilemma and responses, votes' reasons,
    survey answers, the charter, the pledge and the forum's name. It is on no node: not
    in any database file (-wal, -shm included), log or config, nor in a backup taken
    with ``peerforum backup`` on each node — only members' devices can show it."""
    w = world
    forum = w.formed()
    shown = w.c["alice"].read(forum)["entries"]  # the positive control: it was written
    texts = [str(e.get("body", "")) for e in shown]
    assert sum(MARK in t for t in texts) >= 20
    for org in w.orgs:
        backup = w.root / f"{org.name.replace(':', '_')}.pfbak"
        cli_ok("backup", str(backup), "--data", str(org.data))
        with tarfile.open(backup) as tar:
            names = tar.getnames()
            assert "node.db" in names
            parts = [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]
        assert forum.encode() in b"".join(parts)  # the backup holds the forum ...
        for raw in [backup.read_bytes(), *parts]:
            assert MARK.encode() not in raw, f"marker in {backup}"  # ... never its words
        for path in node_files(org):
            assert MARK.encode() not in path.read_bytes(), f"marker in {path}"
