"""Cadence: the year's meetings from the charter, agendas, attendance, iCalendar.

Meetings are named by their local start date (``2025-03-14``): unique within a forum
(two meetings a day is not a cadence), readable in a terminal, sortable as text.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from .charter import CADENCES, CONFIDENTIALITY, parse_fraction

STATUSES = ("present", "late", "excused", "absent")
RSVP = ("yes", "no", "maybe")
YEAR_MS = 365 * 86_400_000


@dataclass(frozen=True)
class Meeting:
    id: str  # local start date, YYYY-MM-DD
    start: str  # local start, YYYY-MM-DDTHH:MM
    hours: int
    title: str
    timezone: str

    def start_ms(self) -> int:
        local = dt.datetime.fromisoformat(self.start).replace(tzinfo=ZoneInfo(self.timezone))
        return int(local.timestamp() * 1000)

    def end_ms(self) -> int:
        return self.start_ms() + self.hours * 3_600_000

    def to_map(self) -> dict[str, Any]:
        return {"id": self.id, "start": self.start, "hours": self.hours, "title": self.title,
                "timezone": self.timezone}  # fmt: skip

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Meeting:
        return cls(str(m["id"]), str(m["start"]), int(m["hours"]), str(m["title"]),
                   str(m["timezone"]))  # fmt: skip


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def schedule_year(start: dt.date, cadence: Mapping[str, Any]) -> list[Meeting]:
    """The year's meetings from ``start`` at the charter's cadence (same day each period)."""
    every = str(cadence["every"])
    count = CADENCES[every]
    days: list[dt.date] = []
    for i in range(count):
        if every == "weekly":
            days.append(start + dt.timedelta(weeks=i))
        elif every == "biweekly":
            days.append(start + dt.timedelta(weeks=2 * i))
        else:
            days.append(_add_months(start, i * (3 if every == "quarterly" else 1)))
    return [
        Meeting(id=d.isoformat(), start=f"{d.isoformat()}T{cadence['start_time']}",
                hours=int(cadence["hours"]), title=f"Forum meeting {i + 1}",
                timezone=str(cadence["timezone"]))
        for i, d in enumerate(days)
    ]  # fmt: skip


def miss_weight(status: str, late_weight: Fraction) -> Fraction:
    """Absent is a miss; late counts ``late_weight`` (half by default); excused is none."""
    return {"absent": Fraction(1), "late": late_weight}.get(status, Fraction(0))


def misses(
    attendance: Mapping[str, Mapping[str, str]],
    meetings: Mapping[str, Meeting],
    member: str,
    charter: Mapping[str, Any],
    now_ms: int,
) -> Fraction:
    """A member's misses over meetings in the year before ``now_ms``."""
    late = parse_fraction(charter["attendance"]["late_weight"], "attendance.late_weight")
    total = Fraction(0)
    for mid, marks in attendance.items():
        meeting = meetings.get(mid)
        when = meeting.start_ms() if meeting else None
        if member in marks and (when is None or when >= now_ms - YEAR_MS):
            total += miss_weight(marks[member], late)
    return total


def agenda(
    meeting: Meeting | None,
    template: Iterable[str],
    parking: list[dict[str, Any]],
    commitments_due: list[dict[str, Any]],
    dilemmas: list[dict[str, Any]],
) -> list[str]:
    """The template's items, the confidentiality reminder always first, with the forum's
    open work filled in where its item stands."""
    items = [t for t in template if t != CONFIDENTIALITY]
    out = [f"{CONFIDENTIALITY}: what is said here stays here (the pledge)"]
    for item in items:
        low = item.casefold()
        if "commitment" in low and "review" in low and commitments_due:
            out.append(item + ": " + "; ".join(f"{c['author']}: {c['text']} (due {c['due']})"
                                               for c in commitments_due))  # fmt: skip
        elif "parking" in low and parking:
            out.append(item + ": " + "; ".join(p["title"] for p in parking[:3]))
        elif "dilemma" in low and dilemmas:
            out.append(item + ": " + "; ".join(f"{d['author']}: {d['issue']}" for d in dilemmas))
        else:
            out.append(item)
    if meeting is not None:
        out.insert(0, f"{meeting.title}, {meeting.start} ({meeting.hours} h, {meeting.timezone})")
    return out


def to_ical(forum_name: str, meetings: Iterable[Meeting], forum: str) -> bytes:
    """An iCalendar file of the meetings. Titles only: never agenda or content, since a
    calendar file ends up on servers the forum does not control."""
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//PeerForum//member client//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", forum_name or "PeerForum")
    for m in meetings:
        tz = ZoneInfo(m.timezone)
        start = dt.datetime.fromisoformat(m.start).replace(tzinfo=tz)
        ev = Event()
        ev.add("uid", f"{m.id}.{forum.split(':')[0].lstrip('!')}@peerforum")
        ev.add("summary", f"{forum_name}: {m.title}" if forum_name else m.title)
        ev.add("dtstart", start)
        ev.add("dtend", start + dt.timedelta(hours=m.hours))
        ev.add("dtstamp", dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # stable output
        cal.add_component(ev)
    return bytes(cal.to_ical())
