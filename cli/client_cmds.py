"""Member commands: ``peerforum client ...`` (this device) and ``peerforum forum ...``.

Every command takes ``--profile DIR`` (the device's keys, session and epoch secrets) and
``--json``. All signing, sealing and opening happens in ``cli.member``, on this device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .member import GhostMemberError, MemberApiError, MemberClient, Profile, ProfileError
from .member.charter import CharterError, load_charter
from .output import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliFailure,
    Output,
    json_option,
)
from .output import run_command as _run_command

F = TypeVar("F", bound=Callable[..., Any])


def run_command(fn: F) -> F:
    """``output.run_command``, knowing the member library's own failures."""

    @functools.wraps(fn)
    def translated(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemberApiError as exc:
            code = EXIT_UNREACHABLE if exc.code == "api.unavailable" else EXIT_FAILURE
            raise CliFailure(exc.message, code, exc.code) from None
        except ProfileError as exc:
            raise CliFailure(str(exc), EXIT_CONFIG, "cli.profile") from None
        except GhostMemberError as exc:
            raise CliFailure(f"refusing to seal: {exc}", EXIT_FAILURE, "client.ghost") from None

    return _run_command(translated)  # type: ignore[return-value]


def profile_option(fn: F) -> F:
    return click.option(
        "--profile", "profile_dir", envvar="PEERFORUM_PROFILE", default="peerforum-profile",
        show_default=True, type=click.Path(file_okay=False),
        help="This device's profile directory (also $PEERFORUM_PROFILE).",
    )(fn)  # fmt: skip


@click.group()
def client() -> None:
    """This device: enroll with a code from the node's operator, log in and out, back up."""


@client.command()
@click.option("--node", "node_url", required=True, help="Your node's URL.")
@click.option("--code", required=True, help="The one-time enrollment code.")
@profile_option
@json_option
@run_command
def enroll(node_url: str, code: str, profile_dir: str, out: Output) -> None:
    """Create this device's keys (they never leave it) and enroll with CODE."""
    c = MemberClient.enroll(profile_dir, node_url, code)
    out.result({"member": c.member, "node": c.node, "device": c.sign_key.key_id},
               f"enrolled {c.member} (device {c.sign_key.key_id})")  # fmt: skip


@client.command()
@profile_option
@json_option
@run_command
def me(profile_dir: str, out: Output) -> None:
    """Show who this device is enrolled as."""
    info = MemberClient(profile_dir).me()
    out.result(info, f"{info['member']} ({info['org']}), {len(info['devices'])} device(s)")


@client.command()
@profile_option
@json_option
@run_command
def logout(profile_dir: str, out: Output) -> None:
    """End this device's session on the node."""
    MemberClient(profile_dir).logout()
    out.result({"ok": True}, "logged out")


PASSPHRASE_ENV = "PEERFORUM_PASSPHRASE"


def passphrase_file_option(fn: F) -> F:
    return click.option(
        "--passphrase-file", type=click.Path(exists=True, dir_okay=False), default=None,
        help=f"Read the passphrase from this file's first line (else ${PASSPHRASE_ENV}, "
             "else a prompt). Never given as a flag value: it would land in shell history.",
    )(fn)  # fmt: skip


def _passphrase(passphrase_file: str | None, *, confirm: bool) -> str:
    """From --passphrase-file, else $PEERFORUM_PASSPHRASE, else the terminal (no echo)."""
    import os
    import sys

    if passphrase_file is not None:
        lines = Path(passphrase_file).read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise CliFailure(f"no passphrase: give --passphrase-file FILE or ${PASSPHRASE_ENV} "
                         "(there is no terminal to ask on)", EXIT_USAGE, "cli.usage")  # fmt: skip
    return str(click.prompt("Backup passphrase", hide_input=True, err=True,
                            confirmation_prompt=confirm))  # fmt: skip


@client.command()
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False),
              help="The backup file to write (mode 0600).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--keys-only", is_flag=True,
              help="Only the device keys and node address: no epoch secrets, no pinned "
                   "node keys (the restored device re-opens epochs from the log).")
@passphrase_file_option
@profile_option
@json_option
@run_command
def backup(out_file: str, force: bool, keys_only: bool, passphrase_file: str | None,
           profile_dir: str, out: Output) -> None:  # fmt: skip
    """Seal this device's keys (and epoch secrets, pinned node keys) under a passphrase.

    \b
    Argon2id (64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended option) derives
    an AES-256-GCM key; the parameters and a random salt are stored in the file. Never
    holds the session token. The passphrase needs 12+ characters: whoever gets the file
    can guess at it offline. Restore with 'peerforum client restore FILE --profile NEW'.
    JSON: {file, member, node, kid, forums, epochs, nodes, kdf: {alg, m_kib, t, p}}."""
    from .member.backup import BackupError, backup_profile, check_out

    try:
        check_out(Path(out_file), force)
        if not Profile(Path(profile_dir)).exists():
            raise ProfileError(f"{profile_dir} holds no enrolled device")
        passphrase = _passphrase(passphrase_file, confirm=True)
        result = backup_profile(profile_dir, out_file, passphrase, force=force,
                                keys_only=keys_only)  # fmt: skip
    except BackupError as exc:
        raise CliFailure(exc.message, EXIT_FAILURE, exc.code) from None
    held = f"{result['epochs']} epoch secret(s) in {result['forums']} forum(s)"
    out.result(result, f"wrote {out_file}: {result['member']}'s device {result['kid']}, {held}")


@client.command()
@click.argument("backup_file", type=click.Path(exists=True, dir_okay=False))
@passphrase_file_option
@profile_option
@json_option
@run_command
def restore(backup_file: str, passphrase_file: str | None, profile_dir: str,
            out: Output) -> None:  # fmt: skip
    """Restore a 'client backup' FILE into --profile DIR (new or empty).

    The restored profile is the same device (same keys); it logs in afresh. A wrong
    passphrase or an altered file fails with exit 1 and writes nothing.
    JSON: {profile, member, node, kid, forums, epochs, nodes}."""
    from .member.backup import BackupError, check_target, restore_profile

    try:
        check_target(Path(profile_dir))
        passphrase = _passphrase(passphrase_file, confirm=False)
        result = restore_profile(backup_file, profile_dir, passphrase)
    except BackupError as exc:
        raise CliFailure(exc.message, EXIT_FAILURE, exc.code) from None
    out.result(result, f"restored {result['member']}'s device {result['kid']} into "
                       f"{profile_dir}")  # fmt: skip


@client.group()
def device() -> None:
    """More devices: request on the new one, add from an enrolled one, remove.

    \b
    new device:  peerforum client device request --node URL --member @you:node \\
                   --profile NEW --out request.json
    old device:  peerforum client device add request.json --profile OLD
    either:      peerforum client device remove KID --profile OTHER
    Adding or removing a device signs device.add/device.remove in each of your forums
    and commits their next epoch: a new device reads from then on, a removed one stops."""


@device.command("request")
@click.option("--node", "node_url", required=True, help="Your node's URL.")
@click.option("--member", required=True, help="Your member id, @handle:node.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the request here (else it is printed).")
@profile_option
@json_option
@run_command
def device_request(node_url: str, member: str, out_file: str | None, profile_dir: str,
                   out: Output) -> None:  # fmt: skip
    """On the NEW device: make its keys and a request for an enrolled device to add.

    The request holds public keys and a signature only. JSON: {member, sign, agree, proof}."""
    import json

    from .member.devices import request_device

    req = request_device(profile_dir, node_url, member)
    if out_file:
        Path(out_file).write_text(json.dumps(req))
    out.result(req, f"carry {out_file} to an enrolled device" if out_file else json.dumps(req))


@device.command("add")
@click.argument("request_file", type=click.Path(exists=True, dir_okay=False))
@profile_option
@json_option
@run_command
def device_add(request_file: str, profile_dir: str, out: Output) -> None:
    """On an ENROLLED device: register the requested device and add it to your forums.

    JSON: {kid, forums: [{forum, event, epoch}]}."""
    import json

    from .member.devices import add_device

    result = add_device(MemberClient(profile_dir), json.loads(Path(request_file).read_text()))
    out.result(result, f"added {result['kid']} to {len(result['forums'])} forum(s)")


@device.command("remove")
@click.argument("kid")
@profile_option
@json_option
@run_command
def device_remove(kid: str, profile_dir: str, out: Output) -> None:
    """Remove device KID (see 'client me') from your forums, then revoke it at the node.

    JSON: {kid, forums: [{forum, event, epoch}]}."""
    from .member.devices import remove_device

    result = remove_device(MemberClient(profile_dir), kid)
    out.result(result, f"removed {kid} from {len(result['forums'])} forum(s)")


@click.group()
def forum() -> None:
    """Forums: create, admit, meet, keep commitments (all content sealed on this device).

    \b
    Forming:     create, nominate, vote, waive, invites, accept, sync, members, status
    Leaving:     remove (a motion), leave
    Governance:  motions, amend, declare, role
    Cadence:     meeting schedule|list|agenda|rsvp|attend|ical
    Content:     post, read, update(s), dilemma(s), respond, rate, parking, resource
    Accountability and health: commit, checkin, record, survey, composition, health"""


@forum.command()
@click.option("--name", required=True, help="The forum's name (sealed: nodes never see it).")
@click.option("--charter", "charter_file", type=click.Path(dir_okay=False), default=None,
              help="A TOML charter; keys left out take the defaults below.")
@profile_option
@json_option
@run_command
def create(name: str, charter_file: str | None, profile_dir: str, out: Output) -> None:
    """Create a forum hosted by your node, with you as its first member and moderator.

    \b
    The charter (sealed; only members read it) has these keys and defaults:
      purpose, values, ground_rules, pledge      text / lists of text
      size.min = 6, size.max = 12
      cadence.every = "monthly" (weekly|biweekly|monthly|quarterly), cadence.hours = 4,
      cadence.start_time = "09:00", cadence.timezone = "UTC"
      composition.max_per_org = 1, [composition.max_per_industry] INDUSTRY = N
      thresholds.admission = {rule = "unanimous", quorum = "2/3"}   (among votes cast)
      thresholds.removal = {rule = "2/3"}       (of members, the subject excluded)
      thresholds.amendment = {rule = "2/3"}, thresholds.hub_move = {rule = "majority"}
      thresholds.waiver = {rule = "unanimous", quorum = "2/3"}
      attendance.max_misses = 2, attendance.late_weight = "1/2"
      updates.retention_days = 30
      agenda = [...]  (the confidentiality reminder always comes first)
    """
    charter = None
    if charter_file is not None:
        try:
            charter = load_charter(charter_file)
        except CharterError as exc:
            raise CliFailure(str(exc), EXIT_CONFIG, "client.bad_charter") from None
    fid = MemberClient(profile_dir).create_forum(name, charter)
    out.result({"forum": fid}, fid)


@forum.command("list")
@profile_option
@json_option
@run_command
def list_(profile_dir: str, out: Output) -> None:
    """Forums you are in or invited to."""
    forums = MemberClient(profile_dir).forums()
    out.result({"forums": forums}, "\n".join(f"{f['forum']}  ({f['as']})" for f in forums)
               or "no forums yet")  # fmt: skip


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def members(forum_id: str, profile_dir: str, out: Output) -> None:
    """Active members, from this device's own verification of the forum's log."""
    ms = MemberClient(profile_dir).members(forum_id)
    out.result({"members": ms}, "\n".join(f"{m['member']}  {m['org']}  {','.join(m['roles'])}"
                                          for m in ms))  # fmt: skip


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@click.option("--text", required=True)
@click.option("--reply-to", "reply_to", default=None, metavar="EVENT",
              help="Reply to this post (its event id, or 4+ first characters of it).")
@profile_option
@json_option
@run_command
def post(forum_id: str, text: str, reply_to: str | None, profile_dir: str, out: Output) -> None:
    """Post TEXT (or a reply), sealed under the forum's current epoch. JSON: {event}."""
    event = MemberClient(profile_dir).post(forum_id, text, reply_to)
    out.result({"event": event}, event)


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@click.option("--from", "from_seq", default=1, show_default=True, help="First seq to show.")
@click.option("--wait-seq", type=int, default=None, help="Wait until this seq exists.")
@click.option("--timeout", "timeout_s", type=int, default=30, show_default=True)
@profile_option
@json_option
@run_command
def read(
    forum_id: str, from_seq: int, wait_seq: int | None, timeout_s: int, profile_dir: str,
    out: Output,
) -> None:  # fmt: skip
    """Entries, decrypted on this device (content of epochs you do not hold: unreadable)."""
    got = MemberClient(profile_dir).read(forum_id, from_seq, wait_seq, timeout_s)
    lines = [f"{e['seq']:>4} {e['author']} {e['type']}: {_shown(e)}" for e in got["entries"]]
    out.result({"head": got["head"], "entries": got["entries"]}, "\n".join(lines))


def _shown(entry: dict[str, Any]) -> str:
    if entry.get("unreadable"):
        return "(unreadable: sealed under an epoch this device does not hold)"
    body = entry.get("body") or {}
    return str(body.get("text", body.get("name", body or "")))


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def sync(forum_id: str, profile_dir: str, out: Output) -> None:
    """Carry out the forum's pending duties (any member's client may).

    \b
    Removals voted through; a new epoch when one is due (admitting candidates who
    accepted an invitation carrying a passing nomination and the pledge — no one else);
    invitations for nominations that passed and are clear of conflicts; charter
    amendments that passed; your own pledge once admitted, if it is the pledge you
    accepted. A member admitted without a passing nomination (a ghost) is removed
    first and no epoch is sealed to them. An amended pledge is shown, never signed for
    you: sign it with 'forum accept-pledge FORUM'. JSON: {forum, epoch, committed,
    admitted, removed, invited, refused, blocked, amended, pledged, ghosts,
    pledge_due: null | {pledge, pledge_hash}}."""
    result = MemberClient(profile_dir).sync(forum_id)
    lines = [f"epoch {result['epoch']}" + (" (committed)" if result["committed"] else "")]
    lines += [f"admitted {m}" for m in result["admitted"]]
    lines += [f"removed {m}" for m in result["removed"]]
    lines += [f"invited {m}" for m in result["invited"]]
    lines += [f"not admitting {r['candidate']}: {r['why']}" for r in result["refused"]]
    lines += [f"not inviting {b['subject']}: " + "; ".join(c["detail"] for c in b["conflicts"])
              for b in result["blocked"]]  # fmt: skip
    lines += [f"removed {g}: admitted without a passing nomination" for g in result["ghosts"]]
    if result["pledge_due"]:
        lines.append(f"the pledge changed; to sign it run: peerforum forum accept-pledge "
                     f"{forum_id}\n  {result['pledge_due']['pledge']}")
    out.result(result, "\n".join(lines))


@forum.command("accept-pledge")
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def accept_pledge(forum_id: str, profile_dir: str, out: Output) -> None:
    """Sign the forum's current pledge (after an amendment changed its text).

    JSON: {event (null if already signed), pledge, pledge_hash}."""
    from .member.duties import accept_pledge as sign

    result = sign(MemberClient(profile_dir), forum_id)
    out.result(result, f"you pledged:\n  {result['pledge']}")


@forum.command()
@profile_option
@json_option
@run_command
def invites(profile_dir: str, out: Output) -> None:
    """Open invitations addressed to you, with the charter and pledge opened here.

    JSON: {"invites": [{forum, hub, invite, name, pledge, charter, nominated_by, note}]}."""
    c = MemberClient(profile_dir)
    found = []
    for inv in c.invites():
        _, env = c.invitation(inv["forum"])
        found.append({**inv, **_envelope_json(env)})
    out.result({"invites": found}, "\n\n".join(
        f"{i['forum']}  {i.get('name', '')}\n  pledge: {i.get('pledge', '(unreadable)')}"
        for i in found) or "no invitations")  # fmt: skip


def _envelope_json(env: dict[str, Any] | None) -> dict[str, Any]:
    if env is None:
        return {"unreadable": True}
    return {"name": env.get("forum_name", ""), "pledge": env.get("pledge"),
            "charter": env.get("charter"), "nominated_by": env.get("nominated_by"),
            "note": env.get("note", ""), "motion": env.get("motion")}  # fmt: skip


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def accept(forum_id: str, profile_dir: str, out: Output) -> None:
    """Accept your invitation to FORUM, signing the pledge it carries.

    Your device signs the invitation, which holds the charter and pledge: that signature
    is your pledge. A member's client admits you with the next epoch; your own client
    then records the pledge in the forum. JSON: {event, invite, pledge, pledge_hash}."""
    result = MemberClient(profile_dir).accept(forum_id)
    out.result(result, f"accepted; you pledged:\n  {result['pledge']}")


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def leave(forum_id: str, profile_dir: str, out: Output) -> None:
    """Leave FORUM (the others commit a new epoch without you)."""
    event = MemberClient(profile_dir).leave(forum_id)
    out.result({"event": event}, event)


from . import forum_cmds  # noqa: E402,F401  (adds the forum model's commands)
