"""``peerforum forum ...``: admission, removal, votes, roles and the forum overview.

Motions and votes are sealed content: nodes see that a ``motion`` or ``vote`` entry
exists, never who is nominated, how anyone voted or why. Motion ids are event ids; any
unique prefix of 4+ characters works where a MOTION is asked for.
"""

from __future__ import annotations

from typing import Any

import click

from .client_cmds import forum, profile_option, run_command
from .member import MemberClient
from .member import actions as act
from .member.reports import alerts_for
from .output import Output, json_option

forum_arg = click.argument("forum_id", metavar="FORUM")


@forum.command()
@forum_arg
@click.argument("member_id", metavar="MEMBER_ID")
@click.option("--note", default="", help="Why you nominate them (sealed; the candidate sees it).")
@click.option("--competitor", multiple=True, help="An organization the candidate competes "
              "with (repeatable; checked against members' organizations).")
@click.option("--supplier", multiple=True, help="A supplier or customer organization (repeatable).")
@click.option("--reporting-line", multiple=True, metavar="MEMBER_ID",
              help="A member the candidate reports to or who reports to them (repeatable).")
@profile_option
@json_option
@run_command
def nominate(
    forum_id: str, member_id: str, note: str, competitor: tuple[str, ...],
    supplier: tuple[str, ...], reporting_line: tuple[str, ...], profile_dir: str, out: Output,
) -> None:  # fmt: skip
    """Nominate MEMBER_ID: a motion with their attested organization and intake, sealed
    to the members. When it passes (the charter's admission rule) and the conflict check
    is clear, any member's `forum sync` invites them. JSON: {"motion": ID}."""
    motion = act.nominate(MemberClient(profile_dir), forum_id, member_id, note,
                          list(competitor), list(supplier), list(reporting_line))  # fmt: skip
    out.result({"motion": motion}, motion)


@forum.command()
@forum_arg
@click.argument("motion_ref", metavar="MOTION")
@click.option("--yes/--no", "yes", required=True, help="Your vote.")
@click.option("--reason", default="", help="Why (sealed; members read it).")
@profile_option
@json_option
@run_command
def vote(forum_id: str, motion_ref: str, yes: bool, reason: str, profile_dir: str,
         out: Output) -> None:  # fmt: skip
    """Vote on MOTION. Your device signs the vote; your latest vote counts.

    JSON: {event, motion, status (open|passed|carried), tally {yes, no, eligible, needed,
    passed}}."""
    r = act.vote(MemberClient(profile_dir), forum_id, motion_ref, yes, reason)
    out.result(r, f"{r['status']}: {r['tally']['yes']} yes, {r['tally']['no']} no "
                  f"({r['tally']['needed']})")  # fmt: skip


@forum.command()
@forum_arg
@click.argument("member_id", metavar="MEMBER_ID")
@click.option("--reason", required=True, help="Why (sealed: only members read it).")
@profile_option
@json_option
@run_command
def remove(forum_id: str, member_id: str, reason: str, profile_dir: str, out: Output) -> None:
    """Move to remove MEMBER_ID. When the motion passes (the charter's removal rule, the
    subject not voting), `forum sync` removes them and commits a new epoch they cannot
    read. JSON: {"motion": ID}."""
    motion = act.remove_motion(MemberClient(profile_dir), forum_id, member_id, reason)
    out.result({"motion": motion}, motion)


@forum.command()
@forum_arg
@click.argument("motion_ref", metavar="NOMINATION")
@click.option("--reason", required=True, help="Why the forum should waive (sealed).")
@profile_option
@json_option
@run_command
def waive(forum_id: str, motion_ref: str, reason: str, profile_dir: str, out: Output) -> None:
    """Move to waive the conflicts of a nomination (its own vote, under the charter's
    waiver rule; the waiver stays in the forum's record). JSON: {"motion": ID}."""
    motion = act.waiver_motion(MemberClient(profile_dir), forum_id, motion_ref, reason)
    out.result({"motion": motion}, motion)


@forum.command()
@forum_arg
@click.option("--charter", "charter_file", required=True, type=click.Path(dir_okay=False),
              help="The whole new charter (TOML, as for forum create).")
@click.option("--reason", default="")
@profile_option
@json_option
@run_command
def amend(forum_id: str, charter_file: str, reason: str, profile_dir: str, out: Output) -> None:
    """Move to replace the charter (the charter's amendment rule). JSON: {"motion": ID}."""
    motion = act.amend_motion(MemberClient(profile_dir), forum_id, charter_file, reason)
    out.result({"motion": motion}, motion)


@forum.command()
@forum_arg
@click.option("--competitor", multiple=True, help="An organization you compete with.")
@click.option("--supplier", multiple=True, help="A supplier or customer organization.")
@click.option("--reporting-line", multiple=True, metavar="MEMBER_ID")
@profile_option
@json_option
@run_command
def declare(forum_id: str, competitor: tuple[str, ...], supplier: tuple[str, ...],
            reporting_line: tuple[str, ...], profile_dir: str, out: Output) -> None:  # fmt: skip
    """Declare your own competitors, suppliers and reporting lines (sealed intake; the
    conflict check for later candidates uses it). JSON: {"event": ID}."""
    event = act.declare(MemberClient(profile_dir), forum_id, list(competitor), list(supplier),
                        list(reporting_line))  # fmt: skip
    out.result({"event": event}, event)


@forum.command()
@forum_arg
@click.argument("member_id", metavar="MEMBER")
@click.option("--roles", required=True, help="Comma-separated: moderator, moderator-elect, "
              "timekeeper (empty string clears).")
@profile_option
@json_option
@run_command
def role(forum_id: str, member_id: str, roles: str, profile_dir: str, out: Output) -> None:
    """Set MEMBER's roles (moderators only; cleartext role.assign). JSON: {"event": ID}."""
    wanted = [r.strip() for r in roles.split(",") if r.strip()]
    event = act.assign_roles(MemberClient(profile_dir), forum_id, member_id, wanted)
    out.result({"event": event}, event)


@forum.command()
@forum_arg
@click.option("--all", "show_all", is_flag=True, help="Include carried motions.")
@profile_option
@json_option
@run_command
def motions(forum_id: str, show_all: bool, profile_dir: str, out: Output) -> None:
    """Motions with their signed votes, tallies and, for nominations, the conflict check.

    JSON: {"motions": [{motion, kind, author, subject, status, tally, votes, conflicts?,
    blocking?}]}."""
    view = MemberClient(profile_dir).view(forum_id)
    rows = []
    for m in sorted(view.motions.values(), key=lambda m: m.seq):
        if m.status == "carried" and not show_all:
            continue
        row = m.to_json()
        if m.kind == "nominate" and m.status != "carried":
            row["conflicts"] = [c.to_json() for c in view.conflicts(m)]
            row["blocking"] = [c.to_json() for c in view.blocking(m)]
        rows.append(row)
    out.result({"motions": rows}, "\n".join(_motion_line(r) for r in rows) or "no open motions")


def _motion_line(r: dict[str, Any]) -> str:
    t = r["tally"] or {}
    line = (f"{r['motion'][:10]}  {r['kind']:<8} {r.get('subject') or '':<28} {r['status']:<7} "
            f"{t.get('yes', 0)} yes / {t.get('no', 0)} no — {t.get('needed', '')}")
    for c in r.get("blocking", []):
        line += f"\n    conflict: {c['detail']}"
    return line


@forum.command()
@forum_arg
@profile_option
@json_option
@run_command
def status(forum_id: str, profile_dir: str, out: Output) -> None:
    """The forum at a glance: name, members and roles, open invitations, alerts for you.

    JSON: {forum, name, members: [{member, org, industry, roles, pledged}], invitations,
    alerts, unreadable}."""
    c = MemberClient(profile_dir)
    view = c.view(forum_id)
    members = [{"member": m, "org": view.person(m).get("org"),
                "industry": view.person(m).get("industry"),
                "roles": sorted(view.roles.get(m, ())), "pledged": m in view.pledges}
               for m in view.active()]  # fmt: skip
    invitations = [{"candidate": k, "accepted": v["accepted"], "by": v["by"]}
                   for k, v in sorted(view.invitations.items())]  # fmt: skip
    alerts = alerts_for(view, c.member)
    result = {"forum": forum_id, "name": view.name, "members": members,
              "invitations": invitations, "alerts": alerts,
              "unreadable": view.unreadable}  # fmt: skip
    lines = [f"{view.name} ({len(members)} members)"]
    lines += [f"  {m['member']}  {m['org']}  {','.join(m['roles'])}" for m in members]
    lines += [f"  invited: {i['candidate']}" + (" (accepted)" if i["accepted"] else "")
              for i in invitations]  # fmt: skip
    lines += [f"  ! {a['text']}" for a in alerts]
    out.result(result, "\n".join(lines))


from . import forum_content_cmds, meeting_cmds  # noqa: E402,F401  (register their commands)
