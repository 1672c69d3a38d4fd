"""``peerforum peer ...``: decide which nodes this node federates with.

All through the running node's admin API: the node fetches and verifies descriptors
itself, so what the operator approves is exactly what the node pinned.
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
from .output import EXIT_USAGE, Output, data_option, fail, json_option, run_command


def _client(data_dir: str) -> AdminClient:
    data = DataDir(Path(data_dir))
    return AdminClient(data, data.load_config())


def _describe(peer: dict[str, Any]) -> str:
    fps = peer["offered_fingerprints"] or peer["fingerprints"]
    return f"{peer['name']} ({peer['status']})  fingerprint {', '.join(fps) or '-'}"


@click.group()
def peer() -> None:
    """Peers: other nodes this node federates with (add, list, approve, block, remove)."""


@peer.command()
@click.argument("url")
@data_option
@click.option("--yes", is_flag=True, help="Approve the fingerprint shown without asking.")
@json_option
@run_command
def add(url: str, data_dir: str, yes: bool, out: Output) -> None:
    """Fetch URL's descriptor, show its fingerprint, and approve (pin) it."""
    client = _client(data_dir)
    found = client.call("POST", "/admin/peers", {"url": url})["peer"]
    offered = found["offered_fingerprints"]
    out.say(f"peer {found['name']} at {found['url']}")
    for fp in offered or found["fingerprints"]:
        out.say(f"  fingerprint {fp}")
    if not offered:  # nothing new to pin: already approved with these keys, or blocked
        out.say(f"{found['name']} is {found['status']}; nothing to approve")
        out.result({"peer": found}, _describe(found))
        return
    out.say("compare this fingerprint with the other node's operator (e.g. by phone)")
    approve = yes or (sys.stdin.isatty() and click.confirm("approve this fingerprint?", err=True))
    if approve:
        found = client.call(
            "POST", f"/admin/peers/{found['name']}/approve", {"fingerprint": offered[0]}
        )["peer"]
        out.say(f"approved {found['name']}")
    else:
        out.say(f"left pending: run `peerforum peer approve {found['name']}` once checked")
    out.result({"peer": found}, _describe(found))


@peer.command("list")
@data_option
@json_option
@run_command
def list_(data_dir: str, out: Output) -> None:
    """List peers with their status and pinned fingerprints."""
    peers = _client(data_dir).call("GET", "/admin/peers")["peers"]
    if out.json_mode:
        out.result({"peers": peers})
        return
    if not peers:
        out.say("no peers yet: peerforum peer add https://other-node.example")
        return
    table = Table("name", "status", "url", "fingerprint")
    for p in peers:
        table.add_row(
            p["name"], p["status"], p["url"],
            ", ".join(p["fingerprints"] or p["offered_fingerprints"]),
        )  # fmt: skip
    Console(file=sys.stdout, width=160).print(table)


@peer.command()
@click.argument("name")
@data_option
@click.option("--fingerprint", default=None, help="Approve only if the peer shows this key.")
@json_option
@run_command
def approve(name: str, data_dir: str, fingerprint: str | None, out: Output) -> None:
    """Pin the keys NAME presented (after checking its fingerprint)."""
    body = {} if fingerprint is None else {"fingerprint": fingerprint}
    found = _client(data_dir).call("POST", f"/admin/peers/{name}/approve", body)["peer"]
    out.result({"peer": found}, _describe(found))


@peer.command()
@click.argument("name")
@data_option
@json_option
@run_command
def block(name: str, data_dir: str, out: Output) -> None:
    """Refuse all traffic from NAME."""
    found = _client(data_dir).call("POST", f"/admin/peers/{name}/block")["peer"]
    out.result({"peer": found}, _describe(found))


@peer.command()
@click.argument("name")
@data_option
@click.option("--yes", is_flag=True, help="Remove without asking.")
@click.option("--force", is_flag=True, help="Remove even while forums here need the peer.")
@json_option
@run_command
def remove(name: str, data_dir: str, yes: bool, force: bool, out: Output) -> None:
    """Forget NAME: its pinned keys and what waits in the outbox for it.

    Refused while a forum on this node needs NAME (it is the hub, or a member or
    invitee is homed there): removing it would make those forums stop replicating
    without anyone deciding so. To stop its traffic, `peer block NAME` (keeps the pins,
    can be undone with `peer approve`). Adding NAME again starts with a new
    fingerprint check."""
    if not yes:
        if not sys.stdin.isatty():
            fail(f"removing {name} needs confirmation: pass --yes", EXIT_USAGE, "cli.usage")
        click.confirm(f"forget {name} and its pinned keys?", err=True, abort=True)
    answer = _client(data_dir).call("POST", f"/admin/peers/{name}/remove", {"force": force})
    if answer["forums"]:
        out.say(f"warning: forums that needed {name}: {', '.join(answer['forums'])}")
    out.result(answer, f"removed {name} ({answer['dropped']} queued message(s) dropped)")
