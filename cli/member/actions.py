"""What a member does in a forum: motions and votes, meetings, content, reports.

Thin functions over ``MemberClient``: each checks the member-enforced rule it can check
before signing (a moderator-only act, a presenter-only rating) so the member gets a
clear refusal instead of an entry every other client will set aside, then seals one
content entry. Reading goes through ``MemberClient.view``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from protocol.codec import Value
from protocol.keys import b64u

from .api import MemberApiError
from .charter import load_charter
from .meetings import RSVP, STATUSES, misses, schedule_year, to_ical
from .motions import Motion
from .reports import meeting_agenda
from .view import ACTIVE, ForumView

if TYPE_CHECKING:
    from .client import MemberClient

DAY_MS = 86_400_000


def _refuse(code: str, message: str) -> MemberApiError:
    return MemberApiError(code, message)


def _active(view: ForumView, me: str) -> None:
    if view.status.get(me) != ACTIVE:
        raise _refuse("rules.not_member", f"{me} is not an active member of {view.forum}")


def _moderator(view: ForumView, me: str, what: str) -> None:
    if not view.is_moderator(me):
        raise _refuse("rules.not_permitted", f"only a moderator may {what}")


def _motion(view: ForumView, ref: str) -> Motion:
    m = view.find_motion(ref)
    if m is None:
        raise _refuse("client.unknown_motion", f"no single motion matches {ref!r}")
    return m


def _ref(found: dict[str, Any], ref: str, what: str) -> str:
    ids = [i for i in found if i.startswith(ref)] if len(ref) >= 4 else []
    if ref in found:
        return ref
    if len(ids) != 1:
        raise _refuse("client.unknown_ref", f"no single {what} matches {ref!r}")
    return ids[0]


# ---------------------------------------------------------------------------- admission


def nominate(
    c: MemberClient, forum: str, candidate: str, note: str = "",
    competitors: list[str] | None = None, suppliers: list[str] | None = None,
    reporting_lines: list[str] | None = None,
) -> str:  # fmt: skip
    """A nomination motion carrying the candidate's verified attestation and intake."""
    view = c.view(forum)
    _active(view, c.member)
    if view.status.get(candidate) == ACTIVE:
        raise _refuse("rules.already_member", f"{candidate} is already a member")
    att = c.attestation(candidate)
    intake: dict[str, Value] = {
        "subject": candidate, "competitors": list(competitors or []),
        "suppliers": list(suppliers or []), "reporting_lines": list(reporting_lines or []),
    }  # fmt: skip
    body: dict[str, Value] = {"kind": "nominate", "subject": candidate, "note": note,
                              "attestation": att, "intake": intake}  # fmt: skip
    return c.content(forum, "motion", body)


def remove_motion(c: MemberClient, forum: str, member: str, reason: str) -> str:
    view = c.view(forum)
    _active(view, c.member)
    if view.status.get(member) != ACTIVE:
        raise _refuse("rules.not_member", f"{member} is not an active member")
    return c.content(forum, "motion", {"kind": "remove", "subject": member, "reason": reason})


def waiver_motion(c: MemberClient, forum: str, nomination: str, reason: str) -> str:
    """A motion to waive the nomination's current conflicts (its own vote; logged)."""
    view = c.view(forum)
    _active(view, c.member)
    m = _motion(view, nomination)
    if m.kind != "nominate":
        raise _refuse("client.unknown_motion", "a waiver is for a nomination")
    keys: list[Value] = [k.key() for k in view.conflicts(m)]
    if not keys:
        raise _refuse("client.no_conflict", "the nomination has no conflict to waive")
    return c.content(forum, "motion", {"kind": "waiver", "motion": m.id, "subject": m.subject,
                                       "conflicts": keys, "reason": reason})  # fmt: skip


def amend_motion(c: MemberClient, forum: str, charter_file: str, reason: str = "") -> str:
    charter = load_charter(charter_file)
    _active(c.view(forum), c.member)
    return c.content(forum, "motion", {"kind": "amend", "charter": charter, "reason": reason})


def vote(c: MemberClient, forum: str, ref: str, yes: bool, reason: str = "") -> dict[str, Any]:
    view = c.view(forum)
    _active(view, c.member)
    m = _motion(view, ref)
    if m.status == "carried":
        raise _refuse("client.motion_closed", "the motion was already carried out")
    if m.kind == "remove" and m.subject == c.member:
        raise _refuse("rules.not_permitted", "the subject of a removal does not vote on it")
    event = c.content(forum, "vote", {"motion": m.id, "vote": "yes" if yes else "no",
                                      "reason": reason})  # fmt: skip
    after = c.view(forum).motions[m.id]
    return {"event": event, "motion": m.id, "status": after.status,
            "tally": after.tally.to_json() if after.tally else None}  # fmt: skip


def declare(
    c: MemberClient, forum: str, competitors: list[str], suppliers: list[str],
    reporting_lines: list[str],
) -> str:  # fmt: skip
    """This member's own intake: competitors, suppliers, reporting lines (sealed)."""
    return c.content(forum, "intake", {"subject": c.member, "competitors": competitors,
                                       "suppliers": suppliers,
                                       "reporting_lines": reporting_lines})  # fmt: skip


def assign_roles(c: MemberClient, forum: str, member: str, roles: list[str]) -> str:
    state, _ = c.verified(forum)
    ev = c._event(forum, "role.assign", state.epoch, {"member": member, "roles": list(roles)})
    c.submit(ev)
    return b64u(ev.event_id)


# ---------------------------------------------------------------------------- meetings


def schedule(c: MemberClient, forum: str, start: dt.date) -> list[dict[str, Any]]:
    view = c.view(forum)
    _moderator(view, c.member, "schedule meetings")
    meetings = schedule_year(start, view.charter["cadence"])
    c.content(forum, "meeting", {"meetings": [m.to_map() for m in meetings]})
    return [m.to_map() for m in meetings]


def agenda(c: MemberClient, forum: str, meeting: str | None, post: bool) -> dict[str, Any]:
    view = c.view(forum)
    result = meeting_agenda(view, meeting)
    if post:
        _moderator(view, c.member, "publish the agenda")
        if result["meeting"] is None:
            raise _refuse("client.no_meeting", "no meeting to publish an agenda for")
        result["event"] = c.content(forum, "agenda", {"meeting": result["meeting"],
                                                      "items": result["items"]})  # fmt: skip
    return result


def rsvp(c: MemberClient, forum: str, meeting: str, answer: str) -> str:
    view = c.view(forum)
    if meeting not in view.meetings or answer not in RSVP:
        raise _refuse("client.no_meeting", f"no meeting {meeting!r} (see forum meeting list)")
    return c.content(forum, "rsvp", {"meeting": meeting, "answer": answer})


def attend(c: MemberClient, forum: str, meeting: str, member: str, status: str) -> dict[str, Any]:
    """Record attendance (moderators only); says when the member reaches the threshold."""
    view = c.view(forum)
    _moderator(view, c.member, "record attendance")
    if meeting not in view.meetings or status not in STATUSES:
        raise _refuse("client.no_meeting", f"no meeting {meeting!r}")
    event = c.content(forum, "attendance", {"meeting": meeting, "member": member,
                                            "status": status})  # fmt: skip
    marks = {k: dict(v) for k, v in view.attendance.items()}
    marks.setdefault(meeting, {})[member] = status  # as every client will fold it
    n = misses(marks, view.meetings, member, view.charter, view.now)
    limit = int(view.charter["attendance"]["max_misses"])
    out: dict[str, Any] = {"event": event, "member": member, "misses": float(n)}
    if n >= limit:
        out["alert"] = f"{member} reached {float(n):g} misses this year (threshold {limit})"
    return out


def ical(c: MemberClient, forum: str) -> bytes:
    view = c.view(forum)
    return to_ical(view.name, sorted(view.meetings.values(), key=lambda m: m.id), forum)


# ---------------------------------------------------------------------------- content


def update(c: MemberClient, forum: str, text: str, expires_days: int | None) -> dict[str, Any]:
    view = c.view(forum)
    days = view.charter["updates"]["retention_days"] if expires_days is None else expires_days
    expires = c.clock() + int(days) * DAY_MS
    # Sealed detached (protocol §6.9): every node deletes the ciphertext at ``expires``;
    # the entry stays, and clients show it as expired. ``expires`` stays inside too, so a
    # client hides it when due even if a node is late to delete.
    return {"event": c.content(forum, "update", {"text": text, "expires": expires},
                               expires=expires), "expires": expires}  # fmt: skip


def rate(c: MemberClient, forum: str, dilemma: str, helpful: bool) -> str:
    view = c.view(forum)
    ref = _ref(view.dilemmas, dilemma, "dilemma")
    if view.dilemmas[ref]["author"] != c.member:
        raise _refuse("rules.not_permitted", "only the presenter rates the responses")
    return c.content(forum, "rating", {"dilemma": ref, "helpful": helpful})


def respond(c: MemberClient, forum: str, dilemma: str, text: str) -> str:
    ref = _ref(c.view(forum).dilemmas, dilemma, "dilemma")
    return c.content(forum, "response", {"dilemma": ref, "text": text})


def parking(c: MemberClient, forum: str, action: str, **fields: Any) -> str:
    if "item" in fields:
        fields["item"] = _ref(c.view(forum).parking, fields["item"], "parking-lot item")
    return c.content(forum, "parking", {"action": action, **fields})


def checkin(c: MemberClient, forum: str, commitment: str, status: str,
            due: str | None = None, note: str = "") -> str:  # fmt: skip
    view = c.view(forum)
    ref = _ref(view.commitments, commitment, "commitment")
    if view.commitments[ref]["author"] != c.member and not view.is_moderator(c.member):
        raise _refuse("rules.not_permitted", "only its author or a moderator checks in")
    body: dict[str, Value] = {"commitment": ref, "status": status, "note": note}
    if due:
        body["due"] = due
    return c.content(forum, "checkin", body)
