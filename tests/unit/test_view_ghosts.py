"""The view's judgement of admissions and pledges, offline: who is a ghost, who may judge,
how a ghost's removal clears it, and which pledges count after an amendment."""

from __future__ import annotations

from dataclasses import replace

from cli.member.charter import default_charter, pledge_hash
from cli.member.view import fold_view

from .test_forum_view import NOW, F, Log


def _admitted_by_vote(log: Log, cand: str) -> None:
    """@a nominates and votes; the envelope names the nomination and the pledge."""
    motion = log.add("motion", "@a:n1", {"kind": "nominate", "subject": cand})
    log.add("vote", "@a:n1", {"motion": motion, "vote": "yes"})
    env = {"motion": motion, "pledge_hash": pledge_hash(default_charter())}
    log.add("member.invite", "@a:n1", {"candidate": cand, "sealed": env})
    log.add("member.accept", cand, {"invite": f"e{len(log.items)}"})
    log.add("epoch.commit", "@a:n1", {"epoch": 2, "admit": [cand]})


def _ghost(log: Log, cand: str) -> int:
    log.add("member.invite", "@b:n2", {"candidate": cand, "sealed": {"motion": "nope"}})
    log.add("member.accept", cand, {"invite": f"e{len(log.items)}"})
    log.add("epoch.commit", "@b:n2", {"epoch": 3, "admit": [cand]})
    return len(log.items)


def test_an_admission_without_a_passing_nomination_is_a_ghost_until_removed() -> None:
    log = Log()
    log.forum(["@a:n1"])
    _admitted_by_vote(log, "@b:n2")
    seq = _ghost(log, "@c:n3")
    view = log.view()
    assert view.ghosts() == ["@c:n3"] and view.unauthorized == {"@c:n3": seq}
    kinds = [a["kind"] for a in view.alerts if a["member"] == "@c:n3"]
    assert kinds == ["unauthorized_admission", "pledge_pending"]
    assert view.ghosts() == log.view("@b:n2").ghosts()  # @b could read the vote, too
    log.add(
        "member.remove",
        "@a:n1",
        {"subject": "@c:n3", "sealed": {"unauthorized": seq, "reason": "r"}},
    )
    after = log.view()
    assert after.ghosts() == [] and after.status["@c:n3"] == "removed"
    assert not [a for a in after.alerts if a["kind"] == "unauthorized_removal"]


def test_a_member_does_not_judge_what_was_sealed_before_them() -> None:
    log = Log()
    log.forum(["@a:n1"])
    _admitted_by_vote(log, "@b:n2")
    mine = log.view("@b:n2")  # @b's own admission: the vote was sealed before @b
    assert mine.ghosts() == [] and not [a for a in mine.alerts
                                        if a["kind"].startswith("unauthorized")]  # fmt: skip


def test_an_amended_pledge_is_not_signed_by_anyone_yet() -> None:
    log = Log()
    log.forum(["@a:n1"])
    old = pledge_hash(default_charter())
    log.add("pledge", "@a:n1", {"pledge_hash": old})
    assert log.view().signed_pledge("@a:n1") and "@a:n1" in log.view().pledges
    new = {**default_charter(), "pledge": "A new pledge."}
    motion = log.add("motion", "@a:n1", {"kind": "amend", "charter": new})
    log.add("vote", "@a:n1", {"motion": motion, "vote": "yes"})
    log.add("charter", "@a:n1", {"charter": new, "motion": motion})
    view = log.view()
    assert view.charter["pledge"] == "A new pledge."
    assert "@a:n1" not in view.pledges and not view.signed_pledge("@a:n1")
    log.add("pledge", "@a:n1", {"pledge_hash": pledge_hash(new)})
    assert "@a:n1" in log.view().pledges


def test_an_admission_invited_before_us_is_not_ours_to_judge() -> None:
    # @b and @c are invited in the same epoch and admitted by separate commits: when
    # @c's admission lands, @b is active but @c's nomination and votes were sealed before
    # @b joined — @b must not call @c a ghost (and must not remove them).
    log = Log()
    log.forum(["@a:n1"])
    env = {"pledge_hash": pledge_hash(default_charter())}
    for cand in ("@b:n2", "@c:n3"):
        motion = log.add("motion", "@a:n1", {"kind": "nominate", "subject": cand})
        log.add("vote", "@a:n1", {"motion": motion, "vote": "yes"})
        log.add("member.invite", "@a:n1", {"candidate": cand, "sealed": {**env, "motion": motion}})
        log.add("member.accept", cand, {"invite": f"e{len(log.items)}"})
    log.add("epoch.commit", "@a:n1", {"epoch": 2, "admit": ["@b:n2"]})
    log.add("epoch.commit", "@a:n1", {"epoch": 3, "admit": ["@c:n3"]})
    assert log.view().ghosts() == []
    # What @b's device can open: nothing sealed before its admission epoch (seq 9).
    admitted = next(i.seq for i in log.items if i.type == "epoch.commit" and i.seq > 3)
    sealed = {"motion", "vote"}
    b_items = [replace(i, body=None) if i.type in sealed and i.seq < admitted else i
               for i in log.items]  # fmt: skip
    view = fold_view(F, "@b:n2", b_items, log.profiles, NOW)
    assert view.ghosts() == []
    assert not [a for a in view.alerts if a["kind"] == "unauthorized_admission"]
