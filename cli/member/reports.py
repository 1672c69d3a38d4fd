"""What members read off the view: rankings, aggregates, records, health signals.

Pure functions of a ``ForumView``. Two honesty rules shape them: survey results exist
only as aggregates of at least ``SURVEY_MIN`` answers, and the "newsletter effect" is
measured by what members post, because reading leaves no trace (by design, nodes and
clients record no reads).
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .meetings import agenda, misses

if TYPE_CHECKING:
    from .view import ForumView

SURVEY_MIN = 5


def _num(f: Fraction) -> float | int:
    return int(f) if f.denominator == 1 else round(float(f), 2)


def attendance_alerts(v: ForumView) -> list[dict[str, Any]]:
    """Members whose misses in the last year reached the charter's threshold (late = half
    by default) — addressed to moderators, who decide what the forum does about it."""
    limit = int(v.charter["attendance"]["max_misses"])
    out = []
    for m in v.active():
        n = misses(v.attendance, v.meetings, m, v.charter, v.now)
        if n >= limit:
            out.append({"to": "moderator", "kind": "attendance", "member": m, "misses": _num(n),
                        "text": f"{m} has missed {_num(n)} meeting(s) this year "
                                f"(threshold {limit}; late counts "
                                f"{v.charter['attendance']['late_weight']})"})  # fmt: skip
    return out


def alerts_for(v: ForumView, member: str) -> list[dict[str, Any]]:
    return [a for a in v.alerts if a["to"] == "all" or v.is_moderator(member)]


def parking_ranked(v: ForumView, include_closed: bool = False) -> list[dict[str, Any]]:
    """Open topics by mean importance × mean urgency (ties: oldest first)."""
    rows = []
    for item in v.parking.values():
        if not item["open"] and not include_closed:
            continue
        scores = list(item["scores"].values())
        imp = Fraction(sum(s[0] for s in scores), len(scores))
        urg = Fraction(sum(s[1] for s in scores), len(scores))
        rows.append({"item": item["item"], "title": item["title"], "author": item["author"],
                     "importance": _num(imp), "urgency": _num(urg), "score": _num(imp * urg),
                     "votes": len(scores), "open": item["open"], "_s": imp * urg,
                     "_seq": item["seq"]})  # fmt: skip
    rows.sort(key=lambda r: (-r["_s"], r["_seq"]))
    return [{k: x for k, x in r.items() if not k.startswith("_")} for r in rows]


def survey_results(v: ForumView, round_: str) -> dict[str, Any]:
    """Aggregates only, and only from ``SURVEY_MIN`` answers: never one member's answer.

    Comments are listed sorted, apart from scores and authors; their wording can still
    identify a writer, which the survey command says."""
    answers = list(v.surveys.get(round_, {}).values())
    out: dict[str, Any] = {"round": round_, "answers": len(answers), "minimum": SURVEY_MIN}
    if len(answers) < SURVEY_MIN:
        out["shown"] = False
        return out
    scores = sorted(a["score"] for a in answers)
    mid = len(scores) // 2
    even = Fraction(scores[mid - 1] + scores[mid], 2) if mid else Fraction(scores[0])
    median = Fraction(scores[mid]) if len(scores) % 2 else even
    out.update({
        "shown": True, "mean": _num(Fraction(sum(scores), len(scores))), "median": _num(median),
        "histogram": {str(k): n for k, n in sorted(Counter(scores).items())},
        "comments": sorted(a["text"] for a in answers if a["text"]),
    })  # fmt: skip
    return out


def composition(v: ForumView) -> dict[str, Any]:
    people = [v.person(m) for m in v.active()]
    orgs = Counter(str(p.get("org", "?")) for p in people)
    industries = Counter(str(p.get("industry") or "unspecified") for p in people)
    comp, size = v.charter["composition"], v.charter["size"]
    return {
        "members": len(people), "size": {"min": size["min"], "max": size["max"]},
        "organizations": dict(sorted(orgs.items())), "industries": dict(sorted(industries.items())),
        "max_per_org": comp["max_per_org"], "max_per_industry": comp["max_per_industry"],
        "over_limit": sorted(o for o, n in orgs.items() if n > comp["max_per_org"]),
    }  # fmt: skip


def quiet_members(v: ForumView, meetings_back: int) -> dict[str, Any]:
    """The newsletter effect: active members with no contribution (post, reply, update,
    dilemma, response, RSVP, commitment, check-in, parking topic, resource) since the
    start of the last ``meetings_back`` meetings held. Reading is not measured."""
    held = sorted((m for m in v.meetings.values() if m.start_ms() <= v.now),
                  key=lambda m: m.start_ms())  # fmt: skip
    out: dict[str, Any] = {"meetings_back": meetings_back, "held": len(held)}
    if len(held) < meetings_back:
        out.update({"since": None, "quiet": []})
        return out
    since = held[-meetings_back].start_ms()
    quiet = [m for m in v.active()
             if not any(ts >= since for ts in v.contributions.get(m, []))]  # fmt: skip
    out.update({"since": held[-meetings_back].id, "quiet": quiet})
    return out


def health(v: ForumView, meetings_back: int = 3) -> dict[str, Any]:
    rounds = sorted(v.surveys)
    return {
        "members": len(v.active()), "below_min": len(v.active()) < v.charter["size"]["min"],
        "newsletter_effect": quiet_members(v, meetings_back),
        "attendance_alerts": attendance_alerts(v),
        "survey": survey_results(v, rounds[-1]) if rounds else None,
        "open_commitments": sum(1 for c in v.commitments.values() if c["status"] == "open"),
        "pledges_pending": sorted(m for m in v.active() if m not in v.pledges),
    }  # fmt: skip


def record(v: ForumView, member: str) -> dict[str, Any]:
    """One member's accountability record: attendance, commitments, contributions."""
    marks = {mid: marks[member] for mid, marks in sorted(v.attendance.items()) if member in marks}
    return {
        "member": member, "status": v.status.get(member, "unknown"),
        "roles": sorted(v.roles.get(member, ())),
        "attendance": marks,
        "misses": _num(misses(v.attendance, v.meetings, member, v.charter, v.now)),
        "max_misses": v.charter["attendance"]["max_misses"],
        "commitments": [{k: c[k] for k in ("commitment", "text", "due", "status")}
                        for c in v.commitments.values() if c["author"] == member],
        "dilemmas": [d["dilemma"] for d in v.dilemmas.values() if d["author"] == member],
        "responses": sum(1 for d in v.dilemmas.values() for r in d["responses"]
                         if r["author"] == member),
        "updates": sum(1 for u in v.updates if u["author"] == member),
        "pledge": v.pledges.get(member),
    }  # fmt: skip


def visible_updates(v: ForumView) -> list[dict[str, Any]]:
    """Updates not past their retention (the node deletes the expired ciphertext too)."""
    return [u for u in v.updates if u["expires"] is None or u["expires"] > v.now]


def next_meeting(v: ForumView, meeting_id: str | None = None) -> Any:
    if meeting_id:
        return v.meetings.get(meeting_id)
    future = sorted((m for m in v.meetings.values() if m.end_ms() >= v.now),
                    key=lambda m: m.start_ms())  # fmt: skip
    return future[0] if future else None


def meeting_agenda(v: ForumView, meeting_id: str | None = None) -> dict[str, Any]:
    meeting = next_meeting(v, meeting_id)
    due = [c for c in v.commitments.values() if c["status"] in ("open", "renegotiated")]
    open_dilemmas = [d for d in v.dilemmas.values() if d["helpful"] is None]
    items = agenda(meeting, v.charter["agenda"], parking_ranked(v), due, open_dilemmas)
    return {"meeting": meeting.id if meeting else None, "items": items}
