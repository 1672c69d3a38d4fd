"""Folding the forum's content areas into the view: meetings, updates, dilemmas, the
parking lot, commitments, resources, surveys and posts.

Each function takes the view, the item and its opened body, and returns None when
applied or the reason it was set aside (member-enforced rules: who may mark attendance,
who rates a dilemma, who checks in on a commitment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .meetings import RSVP, STATUSES, Meeting

if TYPE_CHECKING:
    from .view import ForumView, Item

Apply = Callable[["ForumView", "Item", Mapping[str, Any]], "str | None"]
CHECKINS = ("done", "missed", "renegotiated")


def _meeting(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    if not v.is_moderator(it.author):
        return "only a moderator schedules meetings"
    for m in b.get("meetings", []):
        meeting = Meeting.from_map(m)
        v.meetings[meeting.id] = meeting
    for mid in b.get("cancel", []):
        v.meetings.pop(str(mid), None)
    return None


def _agenda(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    if not v.is_moderator(it.author):
        return "only a moderator publishes the agenda"
    v.agendas[str(b.get("meeting"))] = [str(x) for x in b.get("items", [])]
    return None


def _rsvp(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    mid, answer = str(b.get("meeting")), b.get("answer")
    if mid not in v.meetings or answer not in RSVP:
        return "an RSVP names a scheduled meeting and yes, no or maybe"
    v.rsvps.setdefault(mid, {})[it.author] = str(answer)
    return None


def _attendance(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    if not v.is_moderator(it.author):
        return "only a moderator records attendance"
    mid, status = str(b.get("meeting")), b.get("status")
    if mid not in v.meetings or status not in STATUSES:
        return "attendance names a scheduled meeting and a status"
    v.attendance.setdefault(mid, {})[str(b.get("member"))] = str(status)
    return None


def _update(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.updates.append({"event": it.event, "author": it.author, "ts": it.ts,
                      "text": str(b.get("text", "")),
                      "expires": it.expires if it.expires is not None else _ms(b.get("expires")),
                      # its ciphertext was deleted by every node (protocol §6.9)
                      "expired": b.get("expired") is True})  # fmt: skip
    return None


def _ms(value: Any) -> int | None:
    return value if type(value) is int else None


def _dilemma(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.dilemmas[it.event] = {
        "dilemma": it.event, "author": it.author, "ts": it.ts, "seq": it.seq,
        **{k: str(b.get(k, "")) for k in ("issue", "why", "decision", "ask")},
        "responses": [], "helpful": None,
    }  # fmt: skip
    return None


def _response(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    d = v.dilemmas.get(str(b.get("dilemma")))
    if d is None:
        return "a response to an unknown dilemma"
    d["responses"].append({"author": it.author, "text": str(b.get("text", "")), "ts": it.ts})
    return None


def _rating(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    d = v.dilemmas.get(str(b.get("dilemma")))
    if d is None or d["author"] != it.author:
        return "only the presenter rates a dilemma's responses"
    d["helpful"] = bool(b.get("helpful"))
    return None


def _score(b: Mapping[str, Any]) -> tuple[int, int] | None:
    imp, urg = b.get("importance"), b.get("urgency")
    if type(imp) is int and type(urg) is int and 1 <= imp <= 5 and 1 <= urg <= 5:
        return imp, urg
    return None


def _parking(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    action = b.get("action")
    if action == "add":
        score = _score(b)
        if score is None:
            return "importance and urgency are 1-5"
        v.parking[it.event] = {"item": it.event, "title": str(b.get("title", "")),
                               "author": it.author, "seq": it.seq, "open": True,
                               "scores": {it.author: score}}  # fmt: skip
        return None
    item = v.parking.get(str(b.get("item")))
    if item is None:
        return "no such parking-lot item"
    if action == "vote":
        score = _score(b)
        if score is None:
            return "importance and urgency are 1-5"
        item["scores"][it.author] = score
    elif action == "close":
        item["open"] = False
    else:
        return f"unknown parking action {action!r}"
    return None


def _commitment(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.commitments[it.event] = {"commitment": it.event, "author": it.author, "ts": it.ts,
                               "text": str(b.get("text", "")), "due": str(b.get("due", "")),
                               "status": "open", "checkins": []}  # fmt: skip
    return None


def _checkin(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    c = v.commitments.get(str(b.get("commitment")))
    if c is None:
        return "a check-in on an unknown commitment"
    if it.author != c["author"] and not v.is_moderator(it.author):
        return "only its author or a moderator checks in on a commitment"
    status = b.get("status")
    if status not in CHECKINS:
        return "a check-in is done, missed or renegotiated"
    c["status"] = str(status)
    if status == "renegotiated" and b.get("due"):
        c["due"] = str(b["due"])
    c["checkins"].append({"by": it.author, "status": status, "ts": it.ts,
                          **({"note": str(b["note"])} if b.get("note") else {})})  # fmt: skip
    return None


def _resource(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.resources.append({"resource": it.event, "author": it.author, "ts": it.ts,
                        **{k: str(b.get(k, "")) for k in ("title", "url", "note")}})  # fmt: skip
    return None


def _survey(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    score = b.get("score")
    if type(score) is not int or not 1 <= score <= 10:
        return "a survey score is 1-10"
    # Kept per author only so a member's later answer replaces their earlier one;
    # reports.survey_results never shows an author or a single answer.
    v.surveys.setdefault(str(b.get("round", "")), {})[it.author] = {
        "score": score, "text": str(b.get("text", ""))
    }
    return None


def _post(v: ForumView, it: Item, b: Mapping[str, Any]) -> str | None:
    v.posts.append({"event": it.event, "author": it.author, "ts": it.ts, "type": it.type,
                    "text": str(b.get("text", "")),
                    **({"to": str(b["to"])} if b.get("to") else {})})  # fmt: skip
    return None


AREA_APPLY: dict[str, Apply] = {
    "meeting": _meeting, "agenda": _agenda, "rsvp": _rsvp, "attendance": _attendance,
    "update": _update, "dilemma": _dilemma, "response": _response, "rating": _rating,
    "parking": _parking, "commitment": _commitment, "checkin": _checkin,
    "resource": _resource, "survey": _survey, "post": _post, "reply": _post,
}  # fmt: skip
