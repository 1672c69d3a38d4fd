"""``peerforum member ...``: the operator admits this node's members.

Through the running node's admin API. ``member add`` prints a one-time enrollment code
for the member to type into their own device (``peerforum client enroll``); the node
keeps only its hash.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from node.datadir import DataDir

from .admin_client import AdminClient
from .output import Output, data_option, json_option, run_command


def _client(data_dir: str) -> AdminClient:
    data = DataDir(Path(data_dir))
    return AdminClient(data, data.load_config())


def _path(handle: str) -> str:
    from urllib.parse import quote

    return quote(handle, safe="")


@click.group()
def member() -> None:
    """Members of this node: admit, list, remove."""


@member.command()
@click.argument("handle")
@click.option("--org", required=True, help="The member's organization (attested).")
@click.option("--title", default=None, help="Job title (attested, optional).")
@click.option("--industry", default=None, help="Industry (attested, optional).")
@click.option("--new-code", is_flag=True, help="Issue a fresh code for an existing member.")
@data_option
@json_option
@run_command
def add(
    handle: str, org: str, title: str | None, industry: str | None, new_code: bool,
    data_dir: str, out: Output,
) -> None:  # fmt: skip
    """Admit HANDLE and print a one-time enrollment code (valid 7 days)."""
    body: dict[str, Any] = {"handle": handle, "org": org, "new_code": new_code}
    if title is not None:
        body["title"] = title
    if industry is not None:
        body["industry"] = industry
    answer = _client(data_dir).call("POST", "/admin/members", body)
    out.say("give the code to the member (it is shown once); it expires in 7 days")
    out.result(
        {"member": answer["member"], "enrollment_code": answer["enrollment_code"]},
        f"{answer['member']}\nenrollment code: {answer['enrollment_code']}",
    )


@member.command("list")
@data_option
@json_option
@run_command
def list_(data_dir: str, out: Output) -> None:
    """List members with their status and number of active devices."""
    members = _client(data_dir).call("GET", "/admin/members")["members"]
    if out.json_mode:
        out.result({"members": members})
        return
    if not members:
        out.say("no members yet: peerforum member add HANDLE --org ORG")
        return
    table = Table("member", "org", "status", "devices")
    for m in members:
        table.add_row(m["member"], m["org"], m["status"], str(m["devices"]))
    Console(file=sys.stdout, width=160).print(table)


@member.command()
@click.argument("handle")
@data_option
@json_option
@run_command
def remove(handle: str, data_dir: str, out: Output) -> None:
    """Remove HANDLE: end their sessions and revoke their devices on this node.

    Their forums are not changed by this: a forum's roster changes only by an event a
    member signs (the member's leave, or another member's removal).
    """
    answer = _client(data_dir).call("POST", f"/admin/members/{_path(handle)}/remove")
    out.say("sessions ended and devices revoked; ask the member's forums to remove them")
    out.result(answer, f"{answer['member']} removed")


@member.command()
@click.argument("handle")
@data_option
@json_option
@run_command
def devices(handle: str, data_dir: str, out: Output) -> None:
    """List HANDLE's devices (key ids, status)."""
    answer = _client(data_dir).call("GET", f"/admin/members/{_path(handle)}/devices")
    lines = [f"{d['kid']}  {d['status']}" for d in answer["devices"]] or ["no devices"]
    out.result(answer, "\n".join(lines))
