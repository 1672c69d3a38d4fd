"""Member commands: ``peerforum client ...`` (this device) and ``peerforum forum ...``.

Every command takes ``--profile DIR`` (the device's keys, session and epoch secrets) and
``--json``. All signing, sealing and opening happens in ``cli.member``, on this device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .member import GhostMemberError, MemberApiError, MemberClient, ProfileError
from .output import EXIT_CONFIG, EXIT_FAILURE, EXIT_UNREACHABLE, CliFailure, Output, json_option
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
    """This device: enroll with a code from the node's operator, log in and out."""


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


@click.group()
def forum() -> None:
    """Forums: create, invite, accept, post, read (all content sealed on this device)."""


@forum.command()
@click.option("--name", required=True, help="The forum's name (sealed: nodes never see it).")
@profile_option
@json_option
@run_command
def create(name: str, profile_dir: str, out: Output) -> None:
    """Create a forum hosted by your node, with you as its first member and moderator."""
    fid = MemberClient(profile_dir).create_forum(name)
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
@profile_option
@json_option
@run_command
def post(forum_id: str, text: str, profile_dir: str, out: Output) -> None:
    """Post TEXT, sealed under the forum's current epoch."""
    event = MemberClient(profile_dir).post(forum_id, text)
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
    """Open new epoch secrets, and commit a new epoch if one is due (admissions, removals)."""
    result = MemberClient(profile_dir).sync(forum_id)
    out.result(result, f"epoch {result['epoch']}" + (" (committed)" if result["committed"] else ""))


@forum.command()
@profile_option
@json_option
@run_command
def invites(profile_dir: str, out: Output) -> None:
    """Open invitations addressed to you."""
    found = MemberClient(profile_dir).invites()
    out.result({"invites": found}, "\n".join(i["forum"] for i in found) or "no invitations")


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def accept(forum_id: str, profile_dir: str, out: Output) -> None:
    """Accept your invitation to FORUM (you are admitted with the next epoch)."""
    event = MemberClient(profile_dir).accept(forum_id)
    out.result({"event": event}, event)


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@profile_option
@json_option
@run_command
def leave(forum_id: str, profile_dir: str, out: Output) -> None:
    """Leave FORUM (the others commit a new epoch without you)."""
    event = MemberClient(profile_dir).leave(forum_id)
    out.result({"event": event}, event)


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@click.argument("member_id", metavar="MEMBER_ID")
@click.option("--reason", required=True, help="Why (sealed: only members read it).")
@profile_option
@json_option
@run_command
def remove(forum_id: str, member_id: str, reason: str, profile_dir: str, out: Output) -> None:
    """Remove MEMBER_ID from FORUM."""
    event = MemberClient(profile_dir).remove(forum_id, member_id, reason)
    out.result({"event": event}, event)


@forum.command()
@click.argument("forum_id", metavar="FORUM")
@click.argument("member_id", metavar="MEMBER_ID")
@click.option("--note", default="", help="A note for the members (sealed).")
@profile_option
@json_option
@run_command
def invite(forum_id: str, member_id: str, note: str, profile_dir: str, out: Output) -> None:
    """Invite MEMBER_ID directly (no nomination vote; `forum nominate` will add one)."""
    event = MemberClient(profile_dir).invite(forum_id, member_id, note)
    out.result({"event": event}, event)
