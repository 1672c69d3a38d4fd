"""A forum's life on one real node (issue 4, tests 1, 2, 3 and 5 on one node).

Six executives from six organizations form a forum through nomination, signed votes,
invitation, acceptance with the pledge, and admission with a new epoch; a seventh from an
organization already present is refused by the conflict check. They meet (RSVPs,
attendance, updates, a dilemma with responses, commitments and check-ins), answer the
health survey, remove a member by vote — whose client then cannot open anything later —
and admit one more, who cannot open anything earlier. A marker written in every kind of
content never reaches the node's files.

Multi-node formation needs the federation pieces being built now; this runs on one node.
The library drives most steps (a process per CLI command is slow); the CLI drives a few
representative ones.
"""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path
from typing import Any

import pytest

from cli.member import MemberApiError, MemberClient, actions
from cli.member.sealing import open_epochs, readable

from .conftest import Nodes
from .harness import run_cli

MARK = "zq-marker-5e1d"
PEOPLE = [("alice", "Acme", "Manufacturing"), ("bob", "Beta", "Banking"),
          ("carol", "Coda", "Retail"), ("dan", "Delta", "Energy"),
          ("erin", "Echo", "Health"), ("frank", "Foxtrot", "Logistics"),
          ("gina", "Beta", "Banking"), ("hugo", "Hotel", "Media")]  # fmt: skip
CHARTER = f"""
purpose = "Peers helping peers ({MARK} purpose)"
pledge = "What is said here stays here. {MARK}"
[cadence]
every = "monthly"
hours = 4
[updates]
retention_days = 30
"""


def _ok(*args: str) -> Any:
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    return result.json()


def _admit(forum: str, members: list[MemberClient], cand: MemberClient) -> None:
    motion = _nominate(members[0], forum, cand.member)
    for m in members:
        m_vote(m, forum, motion)
    assert members[-1].sync(forum)["invited"] == [cand.member]
    assert cand.accept(forum)["pledge"].endswith(MARK)
    assert members[1 % len(members)].sync(forum)["admitted"] == [cand.member]
    assert cand.sync(forum)["pledged"] is True


def _nominate(m: MemberClient, forum: str, who: str) -> str:
    return actions.nominate(m, forum, who, note=f"{MARK} note")


def m_vote(m: MemberClient, forum: str, motion: str, reason: str = "") -> None:
    actions.vote(m, forum, motion, True, reason or f"{MARK} vote")


def test_a_forum_year_on_one_node(nodes: Nodes, tmp_path: Path) -> None:
    data, port = nodes.init()
    node = nodes.serve(data, port)
    codes = {}
    for handle, org, industry in PEOPLE:
        codes[handle] = _ok("member", "add", handle, "--org", org, "--industry", industry,
                            "--data", str(data))["enrollment_code"]  # fmt: skip
    a_dir = str(tmp_path / "alice")
    _ok("client", "enroll", "--node", node.url, "--code", codes["alice"], "--profile", a_dir)
    c = {h: MemberClient.enroll(tmp_path / h, node.url, codes[h]) for h, _, _ in PEOPLE[1:]}
    charter = tmp_path / "charter.toml"
    charter.write_text(CHARTER)
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds.removal]\nrule = 'most'\n")
    refused = run_cli("forum", "create", "--name", "x", "--charter", str(bad), "--profile", a_dir,
                      "--json")  # fmt: skip
    assert refused.returncode == 3 and "thresholds.removal.rule" in refused.json()["message"]
    forum = _ok("forum", "create", "--name", f"Circle {MARK}", "--charter", str(charter),
                "--profile", a_dir)["forum"]  # fmt: skip
    alice = MemberClient(a_dir)

    # -- formation: bob through the CLI, the others through the library
    motion = _ok("forum", "nominate", forum, c["bob"].member, "--note", "met at a conference",
                 "--profile", a_dir)["motion"]  # fmt: skip
    voted = _ok("forum", "vote", forum, motion[:8], "--yes", "--reason", f"{MARK} reason",
                "--profile", a_dir)  # fmt: skip
    assert voted["status"] == "passed"
    assert _ok("forum", "sync", forum, "--profile", a_dir)["invited"] == [c["bob"].member]
    invites = _ok("forum", "invites", "--profile", str(tmp_path / "bob"))["invites"]
    assert invites[0]["pledge"].endswith(MARK) and invites[0]["name"] == f"Circle {MARK}"
    _ok("forum", "accept", forum, "--profile", str(tmp_path / "bob"))
    assert _ok("forum", "sync", forum, "--profile", a_dir)["admitted"] == [c["bob"].member]
    c["bob"].sync(forum)
    members = [alice, c["bob"]]
    for h in ("carol", "dan", "erin", "frank"):
        _admit(forum, members, c[h])
        members.append(c[h])
    listed = _ok("forum", "members", forum, "--profile", a_dir)["members"]
    assert sorted(m["org"] for m in listed) == ["Acme", "Beta", "Coda", "Delta", "Echo",
                                                "Foxtrot"]  # fmt: skip
    status = _ok("forum", "status", forum, "--profile", a_dir)
    assert all(m["pledged"] for m in status["members"])
    assert not [a for a in status["alerts"] if a["kind"].startswith("unauthorized")]

    # -- a seventh from Beta: the vote passes, the conflict check refuses, no invitation
    gina = c["gina"]
    motion = _nominate(alice, forum, gina.member)
    for m in members:
        m_vote(m, forum, motion)
    synced = c["carol"].sync(forum)
    assert synced["invited"] == [] and synced["blocked"][0]["subject"] == gina.member
    assert synced["blocked"][0]["conflicts"][0]["kind"] == "same_org"
    assert gina.invites() == []
    shown = _ok("forum", "motions", forum, "--profile", a_dir)["motions"]
    assert [m["blocking"][0]["with"] for m in shown if m["subject"] == gina.member] == [
        c["bob"].member]

    # -- three meetings: RSVPs, attendance, updates, a dilemma, commitments
    start = dt.date.today() - dt.timedelta(days=70)
    sched = _ok("forum", "meeting", "schedule", forum, "--start", start.isoformat(),
                "--profile", a_dir)["meetings"]  # fmt: skip
    held = [m["id"] for m in sched[:3]]
    r: dict[str, Any] = {}
    for m in members:
        actions.rsvp(m, forum, held[0], "yes")
    assert _ok("forum", "meeting", "agenda", forum, "--profile", a_dir)["items"][1].startswith(
        "Confidentiality reminder")
    for mid, late in zip(held, ("late", "absent", "late"), strict=True):
        for m in members:
            status_ = late if m is c["erin"] else "present"
            got = actions.attend(alice, forum, mid, m.member, status_)
            r = got if m is c["erin"] else r
    assert "alert" in r and r["misses"] == 2.0  # late + absent + late = 2
    with pytest.raises(MemberApiError, match="moderator"):  # refused before signing
        actions.attend(c["dan"], forum, held[0], c["erin"].member, "absent")
    for m in members:
        actions.update(m, forum, f"{MARK} update from {m.member}", None)
    d = c["bob"].content(forum, "dilemma", {"issue": f"{MARK} issue", "why": "w",
                                            "decision": "d", "ask": "a"})  # fmt: skip
    actions.respond(c["carol"], forum, d[:8], f"{MARK} when we faced this")
    actions.respond(c["dan"], forum, d, "same here")
    actions.rate(c["bob"], forum, d, True)
    commitment = c["carol"].content(forum, "commitment", {"text": f"{MARK} hire", "due":
                                                          held[2]})  # fmt: skip
    actions.checkin(c["carol"], forum, commitment, "done")
    actions.parking(alice, forum, "add", title=f"{MARK} pricing?", importance=4, urgency=2)
    for i, m in enumerate(members[:5]):
        m.content(forum, "survey", {"round": "r1", "score": 6 + i, "text": f"{MARK} {i}"})
    ical = tmp_path / "forum.ics"
    assert _ok("forum", "meeting", "ical", forum, "--out", str(ical), "--profile",
               a_dir)["meetings"] == 12  # fmt: skip
    assert _ok("forum", "survey", "results", forum, "--round", "r1", "--profile",
               a_dir)["shown"] is True  # fmt: skip
    record = _ok("forum", "record", forum, c["carol"].member, "--profile", a_dir)
    assert record["commitments"][0]["status"] == "done"
    health = _ok("forum", "health", forum, "--profile", a_dir)
    assert health["attendance_alerts"][0]["member"] == c["erin"].member
    view = c["dan"].view(forum)
    assert view.dilemmas[d]["helpful"] is True and len(view.dilemmas[d]["responses"]) == 2
    assert len(view.updates) == 6 and not view.ignored

    # -- removal by vote: a new epoch the removed member cannot open
    frank = c["frank"]
    motion = _ok("forum", "remove", forum, frank.member, "--reason", f"{MARK} absent",
                 "--profile", a_dir)["motion"]  # fmt: skip
    for m in members[:5]:
        m_vote(m, forum, motion)
    epoch_before = alice.verified(forum)[0].epoch
    out = c["dan"].sync(forum)
    assert out["removed"] == [frank.member] and out["committed"] is True
    after_removal = alice.verified(forum)[0]
    assert after_removal.epoch == epoch_before + 1
    alice.post(forum, f"{MARK} after frank left")
    _, entries = alice.verified(forum)
    assert open_epochs(frank.profile, forum, entries, frank.agree_key) == 0
    later = [readable(frank.profile, e, frank.agree_key) for e in entries
             if e.seq > after_removal.seq - 1 and e.signed_event.type == "post"]  # fmt: skip
    assert later and all(e.get("unreadable") for e in later)

    # -- a later member reads from their admission on, never before
    members = members[:5]
    hugo = c["hugo"]
    _admit(forum, members, hugo)
    mine = hugo.read(forum)["entries"]
    posts = [e for e in mine if e["type"] in ("post", "update", "dilemma")]
    assert posts and all(e.get("unreadable") for e in posts)
    hugo.post(forum, f"{MARK} hello from hugo")
    assert hugo.read(forum)["entries"][-1]["body"]["text"].endswith("hello from hugo")
    assert alice.view(forum).posts[-1]["author"] == hugo.member

    # -- nothing of it in the node's files
    assert node.stop(signal.SIGTERM) == 0
    for path in [p for p in data.rglob("*") if p.is_file()] + [node.log_path]:
        assert MARK.encode() not in path.read_bytes(), f"marker found in {path}"
