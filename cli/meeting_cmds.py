"""``peerforum forum meeting ...``: the year's meetings, agendas, RSVPs, attendance, iCal.

Meetings are named by their date (``2025-03-14``). Attendance is kept by moderators only:
other members' clients set aside a mark from anyone else.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from .client_cmds import forum, profile_option, run_command
from .member import MemberClient
from .member import actions as act
from .output import CliFailure, Output, json_option

forum_arg = click.argument("forum_id", metavar="FORUM")


@forum.group()
def meeting() -> None:
    """Meetings: schedule the year, agenda, RSVP, attendance, iCalendar export."""


@meeting.command()
@forum_arg
@click.option("--start", required=True, help="The first meeting's date, YYYY-MM-DD.")
@profile_option
@json_option
@run_command
def schedule(forum_id: str, start: str, profile_dir: str, out: Output) -> None:
    """Create the year's meetings from the charter's cadence (moderators).

    JSON: {"meetings": [{id, start, hours, title, timezone}]}."""
    try:
        day = dt.date.fromisoformat(start)
    except ValueError:
        raise CliFailure(f"--start: not a date: {start!r} (YYYY-MM-DD)") from None
    meetings = act.schedule(MemberClient(profile_dir), forum_id, day)
    out.result({"meetings": meetings}, "\n".join(f"{m['id']}  {m['start']}  {m['hours']} h"
                                                 for m in meetings))  # fmt: skip


@meeting.command("list")
@forum_arg
@profile_option
@json_option
@run_command
def list_(forum_id: str, profile_dir: str, out: Output) -> None:
    """Meetings with RSVPs and attendance. JSON: {"meetings": [{id, start, hours, title,
    rsvps {member: yes|no|maybe}, attendance {member: status}}]}."""
    view = MemberClient(profile_dir).view(forum_id)
    rows = [{**m.to_map(), "rsvps": view.rsvps.get(m.id, {}),
             "attendance": view.attendance.get(m.id, {})}
            for m in sorted(view.meetings.values(), key=lambda m: m.id)]  # fmt: skip
    out.result({"meetings": rows}, "\n".join(
        f"{r['id']}  {r['start']}  rsvp: {sum(v == 'yes' for v in r['rsvps'].values())} yes"
        for r in rows) or "no meetings: forum meeting schedule FORUM --start DATE")  # fmt: skip


@meeting.command()
@forum_arg
@click.option("--meeting", "meeting_id", default=None, help="Default: the next meeting.")
@click.option("--post", is_flag=True, help="Publish it to the forum (moderators).")
@profile_option
@json_option
@run_command
def agenda(forum_id: str, meeting_id: str | None, post: bool, profile_dir: str,
           out: Output) -> None:  # fmt: skip
    """The agenda from the charter's template: the confidentiality reminder first, then
    commitments due, the top of the parking lot and open dilemmas where their items stand.

    JSON: {meeting, items: [text], event?}."""
    result = act.agenda(MemberClient(profile_dir), forum_id, meeting_id, post)
    out.result(result, "\n".join(f"{i}. {t}" for i, t in enumerate(result["items"])))


@meeting.command()
@forum_arg
@click.argument("meeting_id", metavar="MEETING")
@click.option("--yes", "answer", flag_value="yes", help="I will come.")
@click.option("--no", "answer", flag_value="no", help="I cannot come.")
@click.option("--maybe", "answer", flag_value="maybe")
@profile_option
@json_option
@run_command
def rsvp(forum_id: str, meeting_id: str, answer: str | None, profile_dir: str,
         out: Output) -> None:  # fmt: skip
    """Answer for MEETING (your latest answer counts). JSON: {"event": ID}."""
    if answer is None:
        raise click.UsageError("give one of --yes, --no, --maybe")
    event = act.rsvp(MemberClient(profile_dir), forum_id, meeting_id, answer)
    out.result({"event": event}, event)


@meeting.command()
@forum_arg
@click.argument("meeting_id", metavar="MEETING")
@click.argument("member_id", metavar="MEMBER")
@click.option("--present", "status", flag_value="present")
@click.option("--late", "status", flag_value="late", help="Counts as half a miss by default.")
@click.option("--excused", "status", flag_value="excused")
@click.option("--absent", "status", flag_value="absent")
@profile_option
@json_option
@run_command
def attend(forum_id: str, meeting_id: str, member_id: str, status: str | None,
           profile_dir: str, out: Output) -> None:  # fmt: skip
    """Record MEMBER's attendance at MEETING (moderators only).

    JSON: {event, member, misses, alert?} — ``alert`` when the member reached the
    charter's threshold of misses in the last year (late counts half by default)."""
    if status is None:
        raise click.UsageError("give one of --present, --late, --excused, --absent")
    r = act.attend(MemberClient(profile_dir), forum_id, meeting_id, member_id, status)
    if "alert" in r:
        out.say(f"alert: {r['alert']}")
    out.result(r, f"{member_id}: {status} ({r['misses']:g} misses this year)")


@meeting.command()
@forum_arg
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the .ics here (default: stdout).")
@profile_option
@json_option
@run_command
def ical(forum_id: str, out_file: str | None, profile_dir: str, out: Output) -> None:
    """Export the meetings as iCalendar (titles and times only: never forum content).

    JSON: {"file": PATH, "meetings": N} with --out, else {"ical": TEXT}."""
    data = act.ical(MemberClient(profile_dir), forum_id)
    if out_file:
        Path(out_file).write_bytes(data)
        out.result({"file": out_file, "meetings": data.count(b"BEGIN:VEVENT")}, out_file)
    else:
        out.result({"ical": data.decode()}, data.decode())
