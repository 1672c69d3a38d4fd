"""``peerforum forum ...``: updates, dilemmas, the parking lot, commitments, resources,
the health survey, and the composition and health reports. All content is sealed on
this device; ids are event ids, and any unique prefix of 4+ characters works.
"""

from __future__ import annotations

import datetime as dt

import click

from .client_cmds import forum, profile_option, run_command
from .member import MemberClient
from .member import actions as act
from .member.reports import composition as composition_of
from .member.reports import health as health_of
from .member.reports import parking_ranked, survey_results, visible_updates
from .member.reports import record as record_of
from .output import CliFailure, Output, json_option

forum_arg = click.argument("forum_id", metavar="FORUM")


def _date(text: str, option: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise CliFailure(f"{option}: not a date: {text!r} (YYYY-MM-DD)") from None


def _event(out: Output, event: str) -> None:
    out.result({"event": event}, event)


# ---------------------------------------------------------------------------- updates


@forum.command()
@forum_arg
@click.option("--text", required=True)
@click.option("--expires-days", type=click.IntRange(0, 3650), default=None,
              help="Default: the charter's update retention (30 days).")
@profile_option
@json_option
@run_command
def update(forum_id: str, text: str, expires_days: int | None, profile_dir: str,
           out: Output) -> None:  # fmt: skip
    """Share a member update. It expires: clients hide it after that, and the expiry time
    travels in clear so nodes delete the ciphertext. JSON: {event, expires (ms)}."""
    r = act.update(MemberClient(profile_dir), forum_id, text, expires_days)
    out.result(r, r["event"])


@forum.command()
@forum_arg
@profile_option
@json_option
@run_command
def updates(forum_id: str, profile_dir: str, out: Output) -> None:
    """Updates not yet expired. JSON: {"updates": [{event, author, ts, text, expires}]}."""
    ups = visible_updates(MemberClient(profile_dir).view(forum_id))
    out.result({"updates": ups}, "\n".join(f"{u['author']}: {u['text']}" for u in ups))


# ---------------------------------------------------------------------------- dilemmas


@forum.command()
@forum_arg
@click.option("--issue", required=True, help="The issue, in a sentence.")
@click.option("--why", required=True, help="Why it matters.")
@click.option("--decision", required=True, help="The decision you face.")
@click.option("--ask", required=True, help="What you ask of the forum.")
@profile_option
@json_option
@run_command
def dilemma(forum_id: str, issue: str, why: str, decision: str, ask: str, profile_dir: str,
            out: Output) -> None:  # fmt: skip
    """Present a dilemma. JSON: {"event": ID} (the dilemma's id)."""
    _event(out, MemberClient(profile_dir).content(
        forum_id, "dilemma", {"issue": issue, "why": why, "decision": decision, "ask": ask}))


@forum.command()
@forum_arg
@profile_option
@json_option
@run_command
def dilemmas(forum_id: str, profile_dir: str, out: Output) -> None:
    """Dilemmas with their responses and the presenter's rating.

    JSON: {"dilemmas": [{dilemma, author, issue, why, decision, ask, responses, helpful}]}."""
    ds = list(MemberClient(profile_dir).view(forum_id).dilemmas.values())
    out.result({"dilemmas": ds}, "\n".join(
        f"{d['dilemma'][:10]}  {d['author']}: {d['issue']} ({len(d['responses'])} responses)"
        for d in ds))  # fmt: skip


@forum.command()
@forum_arg
@click.argument("dilemma_ref", metavar="DILEMMA")
@click.option("--text", required=True, help="Your experience (not advice).")
@profile_option
@json_option
@run_command
def respond(forum_id: str, dilemma_ref: str, text: str, profile_dir: str, out: Output) -> None:
    """Respond to DILEMMA with your experience. JSON: {"event": ID}."""
    _event(out, act.respond(MemberClient(profile_dir), forum_id, dilemma_ref, text))


@forum.command()
@forum_arg
@click.argument("dilemma_ref", metavar="DILEMMA")
@click.option("--helpful/--not-helpful", required=True)
@profile_option
@json_option
@run_command
def rate(forum_id: str, dilemma_ref: str, helpful: bool, profile_dir: str, out: Output) -> None:
    """Say whether the responses helped (the presenter only). JSON: {"event": ID}."""
    _event(out, act.rate(MemberClient(profile_dir), forum_id, dilemma_ref, helpful))


# ---------------------------------------------------------------------------- parking lot


@forum.group()
def parking() -> None:
    """The parking lot: topics ranked by importance × urgency, feeding the next agenda."""


@parking.command("add")
@forum_arg
@click.option("--title", required=True)
@click.option("--importance", type=click.IntRange(1, 5), default=3, show_default=True)
@click.option("--urgency", type=click.IntRange(1, 5), default=3, show_default=True)
@profile_option
@json_option
@run_command
def parking_add(forum_id: str, title: str, importance: int, urgency: int, profile_dir: str,
                out: Output) -> None:  # fmt: skip
    """Add a topic. JSON: {"event": ID} (the item's id)."""
    _event(out, act.parking(MemberClient(profile_dir), forum_id, "add", title=title,
                            importance=importance, urgency=urgency))  # fmt: skip


@parking.command("vote")
@forum_arg
@click.argument("item", metavar="ITEM")
@click.option("--importance", type=click.IntRange(1, 5), required=True)
@click.option("--urgency", type=click.IntRange(1, 5), required=True)
@profile_option
@json_option
@run_command
def parking_vote(forum_id: str, item: str, importance: int, urgency: int, profile_dir: str,
                 out: Output) -> None:  # fmt: skip
    """Score ITEM (your latest score counts). JSON: {"event": ID}."""
    _event(out, act.parking(MemberClient(profile_dir), forum_id, "vote", item=item,
                            importance=importance, urgency=urgency))  # fmt: skip


@parking.command("close")
@forum_arg
@click.argument("item", metavar="ITEM")
@profile_option
@json_option
@run_command
def parking_close(forum_id: str, item: str, profile_dir: str, out: Output) -> None:
    """Take ITEM off the parking lot (discussed). JSON: {"event": ID}."""
    _event(out, act.parking(MemberClient(profile_dir), forum_id, "close", item=item))


@parking.command("list")
@forum_arg
@profile_option
@json_option
@run_command
def parking_list(forum_id: str, profile_dir: str, out: Output) -> None:
    """Open topics, highest mean importance × mean urgency first.

    JSON: {"items": [{item, title, author, importance, urgency, score, votes, open}]}."""
    items = parking_ranked(MemberClient(profile_dir).view(forum_id))
    out.result({"items": items}, "\n".join(f"{i['score']:>5}  {i['item'][:10]}  {i['title']}"
                                           for i in items))  # fmt: skip


# ---------------------------------------------------------------------------- commitments


@forum.command("commit")
@forum_arg
@click.option("--text", required=True, help="What you commit to.")
@click.option("--due", required=True, help="YYYY-MM-DD")
@profile_option
@json_option
@run_command
def commit_(forum_id: str, text: str, due: str, profile_dir: str, out: Output) -> None:
    """Make a commitment, reviewed at the next meeting. JSON: {"event": ID}."""
    _event(out, MemberClient(profile_dir).content(forum_id, "commitment",
                                                  {"text": text, "due": _date(due, "--due")}))


@forum.command()
@forum_arg
@click.argument("commitment", metavar="COMMITMENT")
@click.option("--done", "status", flag_value="done")
@click.option("--missed", "status", flag_value="missed")
@click.option("--renegotiated", "status", flag_value="renegotiated")
@click.option("--due", default=None, help="The new due date, with --renegotiated.")
@click.option("--note", default="")
@profile_option
@json_option
@run_command
def checkin(forum_id: str, commitment: str, status: str | None, due: str | None, note: str,
            profile_dir: str, out: Output) -> None:  # fmt: skip
    """Check in on COMMITMENT (its author or a moderator). JSON: {"event": ID}."""
    if status is None:
        raise click.UsageError("give one of --done, --missed, --renegotiated")
    new_due = _date(due, "--due") if due else None
    _event(out, act.checkin(MemberClient(profile_dir), forum_id, commitment, status, new_due,
                            note))  # fmt: skip


@forum.command()
@forum_arg
@click.argument("member_id", metavar="MEMBER")
@profile_option
@json_option
@run_command
def record(forum_id: str, member_id: str, profile_dir: str, out: Output) -> None:
    """MEMBER's record: attendance and misses, commitments, dilemmas, responses, updates,
    pledge. JSON: {member, status, roles, attendance, misses, max_misses, commitments,
    dilemmas, responses, updates, pledge}."""
    r = record_of(MemberClient(profile_dir).view(forum_id), member_id)
    lines = [f"{r['member']} ({r['status']}): {r['misses']} misses (max {r['max_misses']})"]
    lines += [f"  {c['due']}  {c['status']:<12} {c['text']}" for c in r["commitments"]]
    out.result(r, "\n".join(lines))


# ---------------------------------------------------------------------------- resources


@forum.group()
def resource() -> None:
    """The forum's resource library."""


@resource.command("add")
@forum_arg
@click.option("--title", required=True)
@click.option("--url", default="")
@click.option("--note", default="")
@profile_option
@json_option
@run_command
def resource_add(forum_id: str, title: str, url: str, note: str, profile_dir: str,
                 out: Output) -> None:  # fmt: skip
    """Add a resource. JSON: {"event": ID}."""
    _event(out, MemberClient(profile_dir).content(forum_id, "resource",
                                                  {"title": title, "url": url, "note": note}))


@resource.command("list")
@forum_arg
@profile_option
@json_option
@run_command
def resource_list(forum_id: str, profile_dir: str, out: Output) -> None:
    """JSON: {"resources": [{resource, author, ts, title, url, note}]}."""
    rs = MemberClient(profile_dir).view(forum_id).resources
    out.result({"resources": rs}, "\n".join(f"{r['title']}  {r['url']}" for r in rs))


# ---------------------------------------------------------------------------- health


def _round(now: dt.date) -> str:
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


@forum.group()
def survey() -> None:
    """The health survey. Results are shown only as aggregates of at least 5 answers.

    \b
    Limits, honestly: an answer is sealed content with an author, like any entry, so
    nodes see that you answered (not what), and a modified client of another member could
    read your answer with your name. PeerForum's clients never display an author or a
    single answer; comments are listed apart from scores, but their wording can still
    identify you."""


@survey.command("answer")
@forum_arg
@click.option("--score", type=click.IntRange(1, 10), required=True, help="1 (poor) to 10.")
@click.option("--text", default="", help="A comment (shown unattributed, with >= 5 answers).")
@click.option("--round", "round_", default=None, help="Default: this quarter, e.g. 2025-Q1.")
@profile_option
@json_option
@run_command
def survey_answer(forum_id: str, score: int, text: str, round_: str | None, profile_dir: str,
                  out: Output) -> None:  # fmt: skip
    """Answer the survey (your latest answer per round counts). JSON: {"event": ID}."""
    body = {"round": round_ or _round(dt.date.today()), "score": score, "text": text}
    _event(out, MemberClient(profile_dir).content(forum_id, "survey", body))


@survey.command("results")
@forum_arg
@click.option("--round", "round_", default=None, help="Default: this quarter.")
@profile_option
@json_option
@run_command
def survey_results_cmd(forum_id: str, round_: str | None, profile_dir: str, out: Output) -> None:
    """Aggregates: answers, mean, median, histogram, comments — or, under 5 answers, only
    the count. JSON: {round, answers, minimum, shown, mean?, median?, histogram?,
    comments?}."""
    r = survey_results(MemberClient(profile_dir).view(forum_id), round_ or _round(dt.date.today()))
    human = (f"{r['answers']} answers: mean {r['mean']}, median {r['median']}" if r["shown"]
             else f"{r['answers']} answer(s): results appear from {r['minimum']}")  # fmt: skip
    out.result(r, human)


@forum.command()
@forum_arg
@profile_option
@json_option
@run_command
def composition(forum_id: str, profile_dir: str, out: Output) -> None:
    """Organizations and industries of the members (attested by their nodes), against the
    charter's limits. JSON: {members, size, organizations, industries, max_per_org,
    max_per_industry, over_limit}."""
    r = composition_of(MemberClient(profile_dir).view(forum_id))
    out.result(r, "\n".join([f"{r['members']} members"]
                            + [f"  {o}: {n}" for o, n in r["organizations"].items()]
                            + [f"  industry {i}: {n}" for i, n in r["industries"].items()]))


@forum.command()
@forum_arg
@click.option("--meetings", "meetings_back", type=click.IntRange(1, 52), default=3,
              show_default=True, help="N for the newsletter-effect signal.")
@profile_option
@json_option
@run_command
def health(forum_id: str, meetings_back: int, profile_dir: str, out: Output) -> None:
    """Forum health. The "newsletter effect" lists members with no contribution (post,
    reply, update, dilemma, response, RSVP, commitment, check-in, parking topic,
    resource) since the last N meetings began: reading leaves no trace, by design, so
    only contributions can be counted.

    JSON: {members, below_min, newsletter_effect {meetings_back, held, since, quiet},
    attendance_alerts, survey, open_commitments, pledges_pending}."""
    r = health_of(MemberClient(profile_dir).view(forum_id), meetings_back)
    ne = r["newsletter_effect"]
    lines = [f"{r['members']} members" + (" (below the charter's minimum)" if r["below_min"]
                                          else "")]  # fmt: skip
    lines.append(f"quiet for {meetings_back} meetings: {', '.join(ne['quiet']) or 'nobody'}"
                 if ne["since"] else f"newsletter effect: needs {meetings_back} meetings held")
    lines += [f"! {a['text']}" for a in r["attendance_alerts"]]
    out.result(r, "\n".join(lines))
