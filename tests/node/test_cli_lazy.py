"""``peerforum serve`` imports the server and its own command, not the rest of the CLI:
the other commands' modules (the member library, the demo, rich's tables) cost a node
about 5 MiB of idle memory (bench/README.md, rss_idle_mib). Each check runs in a fresh
interpreter, since this one has long since imported everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from cli.main import COMMANDS, root

REPO = Path(__file__).resolve().parents[2]

# The top-level command names, which scripts depend on.
NAMES = ["backup", "client", "completion", "config", "db", "demo", "doctor", "forum",
         "forums", "init", "key", "member", "outbox", "peer", "restore", "serve", "status",
         "up"]  # fmt: skip

# Loaded by other commands only: the member library and its client, the demo, rich.
NOT_FOR_SERVE = ["cli.member", "cli.member_cmds", "cli.client_cmds", "cli.demo",
                 "cli.ops_cmds", "cli.ops_render", "rich"]  # fmt: skip

# Resolve `serve` the way a command line does (the group's own parsing, stopped by
# --help after the subcommand is found), then load the server it runs.
SERVE = """\
import json, sys
import cli.main
try:
    cli.main.main(["serve", "--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
from node.server import serve
print(json.dumps(sorted(sys.modules)))
"""


def python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip


def test_serve_loads_neither_other_commands_nor_rich() -> None:
    out = python("-c", SERVE).stdout
    assert "Usage: peerforum serve" in out
    modules = set(json.loads(out.splitlines()[-1]))
    assert "cli.node_cmds" in modules and "node.server" in modules
    assert [m for m in NOT_FOR_SERVE if m in modules] == []


def test_help_lists_every_command_with_its_short_help() -> None:
    out = python("-m", "cli.main", "--help").stdout
    listed = out.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = [line.split(None, 1) for line in listed if not line.startswith("    ")]
    assert [row[0] for row in rows] == NAMES
    assert all(len(row) == 2 for row in rows)  # each with its help text


def test_each_name_resolves_to_the_command_of_that_name() -> None:
    assert sorted(COMMANDS) == NAMES
    ctx = click.Context(root)
    for name in NAMES:
        command = root.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert root.get_command(ctx, "no-such-command") is None


def test_version_and_completion_from_a_fresh_process() -> None:
    assert python("-m", "cli.main", "--version").stdout == "peerforum, version 0.1.0\n"
    assert "_PEERFORUM_COMPLETE" in python("-m", "cli.main", "completion", "bash").stdout
