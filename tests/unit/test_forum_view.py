"""The member-enforced forum model, offline: the view fold over hand-made items.

Tallies under each charter rule, the conflict check and its waiver, attendance with late
counting half, the parking lot's ranking, survey aggregates hidden under five answers,
the charter file's errors, and an iCalendar export that parses back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from cli.member.charter import CharterError, default_charter, load_charter, pledge_hash
from cli.member.meetings import schedule_year, to_ical
from cli.member.motions import tally
from cli.member.reports import (
    composition,
    health,
    meeting_agenda,
    parking_ranked,
    survey_results,
    visible_updates,
)
from cli.member.view import Item, fold_view

F = "!AAAAAAAAAAAAAAAAAAAAAA:acme.example"
NOW = int(dt.datetime(2025, 6, 30, tzinfo=dt.UTC).timestamp() * 1000)
ORGS = {"@a:n1": "Acme", "@b:n2": "Beta", "@c:n3": "Coda", "@d:n4": "Delta",
        "@e:n5": "Echo", "@f:n6": "Foxtrot"}  # fmt: skip


class Log:
    """Builds items in seq order; a content item's event id is ``e<seq>``."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.profiles: dict[str, dict[str, Any]] = {m: {"org": o} for m, o in ORGS.items()}

    def add(self, type: str, author: str, body: dict[str, Any] | None,
            expires: int | None = None) -> str:  # fmt: skip
        seq = len(self.items) + 1
        self.items.append(Item(seq=seq, type=type, author=author, ts=NOW - 1000 + seq,
                               event=f"e{seq}", body=body, expires=expires))  # fmt: skip
        return f"e{seq}"

    def view(self, me: str = "@a:n1", now: int = NOW) -> Any:
        return fold_view(F, me, self.items, self.profiles, now)

    def forum(self, members: list[str], charter: dict[str, Any] | None = None) -> None:
        """Created by the first member; the others admitted directly (which the view
        flags as unauthorized admissions: tests look only at the members they follow)."""
        self.add("forum.create", members[0], {"hub": "acme.example"})
        self.add("charter", members[0], {"name": "Circle", "charter": charter or default_charter()})
        self.add("epoch.commit", members[0], {"epoch": 1, "admit": members[1:]})


def test_tally_rules() -> None:
    five = ["a", "b", "c", "d", "e"]
    unanimous = {"rule": "unanimous", "quorum": "2/3"}
    assert not tally(unanimous, five, {"a": True, "b": True, "c": True}).passed  # 3 < 4 quorum
    assert tally(unanimous, five, {m: True for m in "abcd"}).passed
    assert not tally(unanimous, five, {"a": True, "b": True, "c": True, "d": False}).passed
    two_thirds = {"rule": "2/3"}
    assert not tally(two_thirds, five, {m: True for m in "abc"}).passed  # needs ceil(10/3) = 4
    assert tally(two_thirds, five, {m: True for m in "abcd"}).passed
    assert tally({"rule": "majority"}, five, {m: True for m in "abc"}).passed
    assert not tally({"rule": "majority"}, ["a", "b"], {"a": True}).passed
    # Votes of people not eligible do not count.
    assert not tally(two_thirds, five, {m: True for m in "abcxyz"}).passed


def test_removal_excludes_subject_and_counts_latest_active_votes() -> None:
    log = Log()
    members = list(ORGS)
    log.forum(members)
    subject = members[5]
    motion = log.add("motion", members[0], {"kind": "remove", "subject": subject, "reason": "r"})
    for m in members[:3]:
        log.add("vote", m, {"motion": motion, "vote": "yes"})
    log.add("vote", subject, {"motion": motion, "vote": "no"})  # the subject does not count
    log.add("vote", members[3], {"motion": motion, "vote": "no"})
    v = log.view()
    t = v.motions[motion].tally
    assert (t.yes, t.no, t.eligible, t.passed) == (3, 1, 5, False)  # 2/3 of 5 → 4 yes
    log.add("vote", members[3], {"motion": motion, "vote": "yes", "reason": "changed my mind"})
    v = log.view()
    assert v.motions[motion].status == "passed"
    assert [m.id for m in v.ready_removals()] == [motion]
    log.add("member.remove", members[1], {"subject": subject,
                                          "sealed": {"motion": motion, "reason": "r"}})
    v = log.view()
    assert v.status[subject] == "removed" and v.motions[motion].status == "carried"
    assert not any(a["kind"] == "unauthorized_removal" for a in v.alerts)


def test_removal_without_motion_is_flagged() -> None:
    log = Log()
    log.forum(list(ORGS))
    log.add("member.remove", "@a:n1", {"subject": "@b:n2"})
    kinds = [a["kind"] for a in log.view().alerts if a.get("member") == "@b:n2"]
    assert "unauthorized_removal" in kinds


def nominate(log: Log, candidate: str, org: str, **intake: Any) -> str:
    log.profiles[candidate] = {"org": org}
    return log.add("motion", "@a:n1", {"kind": "nominate", "subject": candidate,
                                       "intake": {"subject": candidate, **intake}})


def test_admission_needs_pass_clear_conflicts_and_pledge() -> None:
    log = Log()
    members = list(ORGS)[:5]
    log.forum(members)
    cand = "@f:n6"
    motion = nominate(log, cand, "Foxtrot")
    for m in members[:3]:
        log.add("vote", m, {"motion": motion, "vote": "yes"})
    assert log.view().ready_invites() == []  # 3 of 5 cast: under the 2/3 quorum
    log.add("vote", members[3], {"motion": motion, "vote": "yes"})
    v = log.view()
    assert [m.id for m in v.ready_invites()] == [motion]
    charter = v.charter
    invite = log.add("member.invite", "@b:n2", {"candidate": cand, "sealed": {
        "motion": motion, "pledge_hash": pledge_hash(charter), "pledge": charter["pledge"]}})
    assert log.view().admissible(cand) == "no accepted invitation"
    log.add("member.accept", cand, {"invite": invite})
    v = log.view()
    assert v.admissible(cand) is None and v.motions[motion].status == "carried"
    log.add("epoch.commit", "@c:n3", {"epoch": 2, "admit": [cand]})
    v = log.view()
    assert v.status[cand] == "active" and not any(
        a["kind"] == "unauthorized_admission" and a["member"] == cand for a in v.alerts)


def test_invitation_without_pledge_is_not_admissible() -> None:
    log = Log()
    log.forum(["@a:n1"])
    motion = nominate(log, "@b:n2", "Beta")
    log.add("vote", "@a:n1", {"motion": motion, "vote": "yes"})
    invite = log.add("member.invite", "@a:n1", {"candidate": "@b:n2",
                                                 "sealed": {"motion": motion}})
    log.add("member.accept", "@b:n2", {"invite": invite})
    assert "pledge" in str(log.view().admissible("@b:n2"))
    invite = log.add("member.invite", "@a:n1", {"candidate": "@b:n2", "sealed": None})
    log.add("member.accept", "@b:n2", {"invite": invite})
    assert "does not open" in str(log.view().admissible("@b:n2"))
    log.add("epoch.commit", "@a:n1", {"epoch": 2, "admit": ["@b:n2"]})
    assert any(a["kind"] == "unauthorized_admission" for a in log.view().alerts)


def test_conflicts_same_org_declared_and_waiver() -> None:
    log = Log()
    members = list(ORGS)[:6]
    log.forum(members)
    log.add("intake", "@b:n2", {"subject": "@b:n2", "competitors": ["Zulu"]})
    same = nominate(log, "@g:n1", "Acme")
    rival = nominate(log, "@z:n7", "Zulu", reporting_lines=["@c:n3"])
    for m in members:
        log.add("vote", m, {"motion": same, "vote": "yes"})
        log.add("vote", m, {"motion": rival, "vote": "yes"})
    v = log.view()
    assert v.motions[same].status == "passed" and v.ready_invites() == []
    kinds = {c.kind: c.with_ for c in v.blocking(v.motions[same])}
    assert kinds == {"same_org": "@a:n1"}
    kinds = {c.kind: c.with_ for c in v.blocking(v.motions[rival])}
    assert kinds == {"competitor": "@b:n2", "reporting_line": "@c:n3"}
    keys = [c.key() for c in v.conflicts(v.motions[rival])]
    waiver = log.add("motion", "@d:n4", {"kind": "waiver", "motion": rival, "conflicts": keys,
                                         "subject": "@z:n7", "reason": "different markets"})
    for m in members[:3]:
        log.add("vote", m, {"motion": waiver, "vote": "yes"})
    assert log.view().ready_invites() == []  # the waiver has not passed: quorum 4
    log.add("vote", members[3], {"motion": waiver, "vote": "yes"})
    assert [m.id for m in log.view().ready_invites()] == [rival]


def test_forum_full_and_industry_limit() -> None:
    charter = default_charter()
    charter["size"]["max"] = 6
    charter["composition"]["max_per_industry"] = {"Banking": 1}
    log = Log()
    log.forum(list(ORGS), charter)
    log.profiles["@a:n1"]["industry"] = "Banking"
    m = nominate(log, "@g:n9", "Golf")
    log.profiles["@g:n9"]["industry"] = "Banking"
    v = log.view()
    assert {c.kind for c in v.conflicts(v.motions[m])} == {"forum_full", "industry_limit"}


def test_attendance_late_counts_half_and_only_moderators() -> None:
    log = Log()
    log.forum(list(ORGS))
    meetings = schedule_year(dt.date(2025, 1, 10), default_charter()["cadence"])
    log.add("meeting", "@b:n2", {"meetings": [meetings[0].to_map()]})  # not a moderator
    assert log.view().meetings == {}
    log.add("meeting", "@a:n1", {"meetings": [m.to_map() for m in meetings]})
    ids = [m.id for m in meetings]
    log.add("attendance", "@b:n2", {"meeting": ids[0], "member": "@c:n3", "status": "absent"})
    for mid, status in zip(ids[:3], ("late", "absent", "late"), strict=True):
        log.add("attendance", "@a:n1", {"meeting": mid, "member": "@c:n3", "status": status})
    log.add("attendance", "@a:n1", {"meeting": ids[0], "member": "@d:n4", "status": "late"})
    log.add("attendance", "@a:n1", {"meeting": ids[1], "member": "@d:n4", "status": "excused"})
    v = log.view()
    assert any(i["why"] == "only a moderator records attendance" for i in v.ignored)
    alerts = [a for a in v.alerts if a["kind"] == "attendance"]
    assert [(a["member"], a["misses"], a["to"]) for a in alerts] == [("@c:n3", 2, "moderator")]
    h = health(v, 3)
    assert h["newsletter_effect"]["held"] == 6  # Jan–Jun held before NOW


def test_parking_lot_ranked_by_importance_times_urgency() -> None:
    log = Log()
    log.forum(list(ORGS))
    low = log.add("parking", "@a:n1", {"action": "add", "title": "low", "importance": 2,
                                       "urgency": 2})
    high = log.add("parking", "@b:n2", {"action": "add", "title": "high", "importance": 4,
                                        "urgency": 3})
    log.add("parking", "@c:n3", {"action": "vote", "item": low, "importance": 5, "urgency": 5})
    closed = log.add("parking", "@c:n3", {"action": "add", "title": "done", "importance": 5,
                                          "urgency": 5})
    log.add("parking", "@c:n3", {"action": "close", "item": closed})
    ranked = parking_ranked(log.view())
    assert [(r["title"], r["score"]) for r in ranked] == [("high", 12), ("low", 12.25)][::-1]
    assert high in [r["item"] for r in ranked]


def test_survey_aggregates_hidden_under_five() -> None:
    log = Log()
    log.forum(list(ORGS))
    for i, m in enumerate(list(ORGS)[:4]):
        log.add("survey", m, {"round": "2025-Q2", "score": 6 + i, "text": f"c{i}"})
    r = survey_results(log.view(), "2025-Q2")
    assert r == {"round": "2025-Q2", "answers": 4, "minimum": 5, "shown": False}
    log.add("survey", "@a:n1", {"round": "2025-Q2", "score": 10, "text": ""})  # replaces
    assert survey_results(log.view(), "2025-Q2")["answers"] == 4
    log.add("survey", "@e:n5", {"round": "2025-Q2", "score": 5, "text": "c4"})
    r = survey_results(log.view(), "2025-Q2")
    assert r["shown"] and r["answers"] == 5 and r["median"] == 8
    assert r["histogram"] == {"5": 1, "7": 1, "8": 1, "9": 1, "10": 1}
    assert "@a:n1" not in str(r) and r["comments"] == ["c1", "c2", "c3", "c4"]


def test_updates_expire_and_content_rules() -> None:
    log = Log()
    log.forum(list(ORGS))
    log.add("update", "@a:n1", {"text": "old"}, expires=NOW - 1)
    log.add("update", "@b:n2", {"text": "new"}, expires=NOW + 1)
    d = log.add("dilemma", "@b:n2", {"issue": "i", "why": "w", "decision": "d", "ask": "a"})
    log.add("response", "@c:n3", {"dilemma": d, "text": "when I..."})
    log.add("rating", "@c:n3", {"dilemma": d, "helpful": True})  # not the presenter
    log.add("rating", "@b:n2", {"dilemma": d, "helpful": True})
    c = log.add("commitment", "@c:n3", {"text": "hire a CFO", "due": "2025-07-01"})
    log.add("checkin", "@d:n4", {"commitment": c, "status": "done"})  # not allowed
    log.add("checkin", "@c:n3", {"commitment": c, "status": "renegotiated", "due": "2025-09-01"})
    v = log.view()
    assert [u["text"] for u in visible_updates(v)] == ["new"]
    assert v.dilemmas[d]["helpful"] is True and len(v.dilemmas[d]["responses"]) == 1
    assert v.commitments[c]["status"] == "renegotiated" and v.commitments[c]["due"] == "2025-09-01"
    assert len(v.ignored) == 2
    assert composition(v)["organizations"]["Acme"] == 1
    agenda = meeting_agenda(v)["items"]
    assert agenda[0].startswith("Confidentiality reminder")


def test_charter_changes_only_by_passing_amendment() -> None:
    log = Log()
    members = list(ORGS)
    log.forum(members)
    new = default_charter()
    new["attendance"]["max_misses"] = 3
    log.add("charter", "@b:n2", {"charter": new})
    assert log.view().charter["attendance"]["max_misses"] == 2
    motion = log.add("motion", "@b:n2", {"kind": "amend", "charter": new})
    for m in members[:4]:
        log.add("vote", m, {"motion": motion, "vote": "yes"})
    assert [m.id for m in log.view().ready_amendments()] == [motion]
    log.add("charter", "@c:n3", {"charter": new, "motion": motion})
    v = log.view()
    assert v.charter["attendance"]["max_misses"] == 3 and v.motions[motion].status == "carried"
    assert v.name == "Circle"


def test_charter_file_errors_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('pledge = "I keep it here"\n[size]\nmax = 8\n'
                    '[composition.max_per_industry]\nBanking = 2\n'
                    '[attendance]\nlate_weight = 0.5\n')  # fmt: skip
    c = load_charter(good)
    assert c["size"] == {"min": 6, "max": 8} and c["attendance"]["late_weight"] == "1/2"
    for text, key in [
        ("[size]\nmaximum = 3\n", "size.maximum"),
        ("[thresholds.removal]\nrule = \"most\"\n", "thresholds.removal.rule"),
        ("[cadence]\nevery = \"daily\"\n", "cadence.every"),
        ("[cadence]\ntimezone = \"Mars/Base\"\n", "cadence.timezone"),
        ("colour = 1\n", "colour"),
        ("size = 3\n", "size"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(CharterError) as err:
            load_charter(bad)
        assert err.value.key == key and key in str(err.value)


def test_ical_parses_back() -> None:
    from icalendar import Calendar

    meetings = schedule_year(dt.date(2025, 1, 31), default_charter()["cadence"])
    assert [m.id for m in meetings][:3] == ["2025-01-31", "2025-02-28", "2025-03-31"]
    data = to_ical("Circle", meetings, F)
    cal = Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 12
    first = events[0]
    assert first.decoded("dtstart") == dt.datetime(2025, 1, 31, 9, tzinfo=dt.UTC).astimezone(
        first.decoded("dtstart").tzinfo)
    assert (first.decoded("dtend") - first.decoded("dtstart")) == dt.timedelta(hours=4)
    assert str(first["summary"]) == "Circle: Forum meeting 1"
